"""Search engine: operators, caching, budget, constraints, resume, backends, quality on a toy front."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest
from pymoo.core.population import Population

from crossnas.search import LocalBackend, ProcessPoolBackend, hypervolume, pareto_records, search
from crossnas.search.fitness import make_fitness
from crossnas.search.operators import KeyDuplicateElimination, SpaceCrossover, SpaceMutation, SpaceSampling
from crossnas.search.problem import SpaceProblem
from crossnas.space.base import Gene, Space

OBJ = {"acc": "max", "cost": "min"}


class ToySpace(Space):
    """6 genes, 4-6 choices; invalid when depth*width too large; `skip` makes `kernel` irrelevant."""

    _genes = [Gene("depth", (1, 2, 3, 4)), Gene("width", (8, 16, 24, 32, 48)), Gene("bits", (2, 3, 4, 6, 8)),
              Gene("skip", (0, 1, 2, 3)), Gene("kernel", (1, 3, 5, 7)),
              Gene("xbar", (32, 64, 128, 256, 512, 1024))]

    @property
    def genes(self):
        return self._genes

    def is_valid(self, g):
        return not (g[0] == 3 and g[1] == 4)

    def canonical(self, g):
        g = np.array(g, dtype=np.int64, copy=True)
        if g[3] == 0:
            g[4] = 0
        return g


def toy_metrics(a: dict) -> dict:
    cap = a["depth"] * a["width"] * (a["kernel"] if a["skip"] else 1)
    acc = (1 - math.exp(-cap / 60)) * (1 - 0.5 ** a["bits"]) * (1 + 0.05 * a["skip"]) / 1.2
    acc -= 0.02 * abs(math.log2(a["xbar"] / 128))
    cost = cap * a["bits"] / 8 * (1 + 64 / a["xbar"]) + 0.3 * a["skip"]
    return {"acc": acc, "cost": cost, "area_mm2": cost / 10}


def toy_evaluate(archs):
    return [toy_metrics(a) for a in archs]


def all_records(space):
    seen, out = set(), []
    for t in itertools.product(*(range(g.size) for g in space.genes)):
        g = np.array(t)
        if space.is_valid(g) and space.key(g) not in seen:
            seen.add(space.key(g))
            out.append({"key": space.key(g), "metrics": toy_metrics(space.decode(g))})
    return out


class Counter:
    def __init__(self, fail_at_call: int | None = None):
        self.keys, self.calls, self.fail_at_call = [], 0, fail_at_call

    def __call__(self, archs):
        self.calls += 1
        if self.fail_at_call is not None and self.calls == self.fail_at_call:
            raise RuntimeError("boom")
        self.keys += [json.dumps(a, sort_keys=True) for a in archs]
        return toy_evaluate(archs)


def test_operators_valid_and_canonical():
    space, rng = ToySpace(), np.random.default_rng(0)
    prob = SpaceProblem(space, 2, 0)
    X = SpaceSampling(space).do(prob, 200, random_state=rng).get("X")
    pop = Population.new(X=X)
    M = SpaceMutation(space, 0.5).do(prob, pop.copy(), random_state=rng).get("X")
    parents = rng.integers(0, len(pop), size=(100, 2))
    C = SpaceCrossover(space).do(prob, pop, parents, random_state=rng).get("X")
    for x in np.concatenate([X, M, C]).astype(np.int64):
        assert space.is_valid(x) and np.array_equal(space.canonical(x), x)
    assert not np.array_equal(M, X)
    # duplicate elimination works on canonical keys and on already-seen keys
    a = np.array([0, 0, 0, 0, 2, 0])
    dup = Population.new(X=np.stack([a, space.canonical(a), [1, 1, 1, 1, 1, 1]]))
    out = KeyDuplicateElimination(space, seen=lambda k: k == "1,1,1,1,1,1").do(dup)
    assert len(out) == 1


@pytest.mark.parametrize("strategy", ["nsga2", "evolution", "random"])
def test_budget_cap_and_no_reevaluation(strategy, tmp_path):
    ev = Counter()
    log = tmp_path / "log.jsonl"
    res = search(ToySpace(), ev, objectives=OBJ, strategy=strategy, budget=137, seed=1, pop_size=20,
                 progress=False, log_path=log)
    assert len(ev.keys) == len(set(ev.keys)) == 137 == res.n_evaluations == len(res.history)
    assert len({r["key"] for r in res.history}) == 137
    assert len(log.read_text().splitlines()) == 137
    assert res.pareto and len(res.hypervolume) == res.generations
    assert all(b >= a - 1e-12 for a, b in zip(res.hypervolume, res.hypervolume[1:]))


def test_exhausted_space_stops():
    class Tiny(ToySpace):
        _genes = [Gene("depth", (1, 2)), Gene("width", (8, 16)), Gene("bits", (2, 4)), Gene("skip", (0, 1)),
                  Gene("kernel", (1, 3)), Gene("xbar", (64, 128))]

    ev = Counter()
    res = search(Tiny(), ev, objectives=OBJ, strategy="random", budget=1000, pop_size=10, progress=False)
    assert len(ev.keys) == len(set(ev.keys)) == res.n_evaluations == 48  # 64 genomes, 16 aliased


@pytest.mark.parametrize("strategy", ["nsga2", "evolution"])
def test_constraints(strategy):
    cons = {"area_mm2": ("<=", 3.0), "acc": (">=", 0.3)}
    res = search(ToySpace(), toy_evaluate, objectives=OBJ, strategy=strategy, budget=200, seed=0,
                 pop_size=20, constraints=cons, progress=False)
    assert res.pareto
    assert all(r["metrics"]["area_mm2"] <= 3.0 and r["metrics"]["acc"] >= 0.3 for r in res.pareto)
    assert any(r["metrics"]["area_mm2"] > 3.0 for r in res.history)


@pytest.mark.parametrize("strategy", ["nsga2", "evolution", "random"])
def test_resume_equivalence(strategy, tmp_path):
    kw = dict(objectives=OBJ, strategy=strategy, budget=150, seed=3, pop_size=20, progress=False)
    full = search(ToySpace(), toy_evaluate, **kw)
    ck = tmp_path / "ck.json"
    crash = Counter(fail_at_call=4)
    with pytest.raises(RuntimeError, match="boom"):
        search(ToySpace(), crash, checkpoint=ck, **kw)
    saved = json.loads(ck.read_text())
    assert saved["generation"] == 3 and len(saved["store"]) == len(crash.keys)
    assert saved["hv_ref"] and "rng" in saved["strategy"]
    rest = Counter()
    res = search(ToySpace(), rest, checkpoint=ck, **kw)
    assert len(rest.keys) == 150 - len(crash.keys)  # nothing evaluated twice across the restart
    assert [r["key"] for r in res.history] == [r["key"] for r in full.history]
    assert [r["key"] for r in res.pareto] == [r["key"] for r in full.pareto]
    assert res.hypervolume == full.hypervolume and res.hv_ref == full.hv_ref


def test_backend_equivalence():
    kw = dict(objectives=OBJ, strategy="nsga2", budget=80, seed=2, pop_size=20, progress=False)
    a = search(ToySpace(), toy_evaluate, backend=LocalBackend(), **kw)
    pool = ProcessPoolBackend(workers=3)
    try:
        b = search(ToySpace(), toy_evaluate, backend=pool, **kw)
        archs = [r["arch"] for r in a.history[:7]]
        assert pool.map(toy_evaluate, archs) == toy_evaluate(archs)
    finally:
        pool.close()
    assert [(r["key"], r["metrics"]) for r in a.history] == [(r["key"], r["metrics"]) for r in b.history]


def test_nsga2_finds_true_front():
    space = ToySpace()
    res = search(space, toy_evaluate, objectives=OBJ, strategy="nsga2", budget=400, seed=0, pop_size=40,
                 progress=False)
    true = all_records(space)
    ratio = hypervolume(res.history, OBJ, res.hv_ideal, res.hv_ref) / hypervolume(
        true, OBJ, res.hv_ideal, res.hv_ref)
    assert ratio >= 0.9
    front = {r["key"] for r in pareto_records(true, OBJ)}
    assert len(front & {r["key"] for r in res.pareto}) >= 10


def test_fitness_presets():
    f = make_fitness("paper-stage1", {})
    m = {"accuracy_pim": 0.9, "latency_s": 1.414e-3, "energy_j": 63e-3}
    assert f(m) == pytest.approx(0.8 * 90 - 0.2 * 100 * 100)
    g = make_fitness("paper-stage2", {}, bounds={"latency_ms": (0.0, 1.0), "energy_mj": (0.0, 1.0)})
    assert g({"accuracy_pim": 0.5, "latency_s": 5e-4, "energy_j": 1e-3}) == pytest.approx(
        0.99 * 50 - 0.01 * 50 * 100)
    first = [m, {**m, "latency_s": 0.0}]
    h = make_fitness("paper-stage1", {}, bounds="first-population", first_metrics=first)
    assert h(m) == pytest.approx(0.8 * 90 - 0.2 * 100 * 0)  # energy range collapses to one point
    assert make_fitness(None, {"cost": "min"})({"cost": 2.0}) == -2.0


def test_evolution_with_paper_fitness_and_exports(tmp_path):
    def ev(archs):
        out = []
        for m in toy_evaluate(archs):
            out.append({"accuracy_pim": m["acc"], "latency_s": m["cost"] * 1e-4, "energy_j": m["cost"] * 1e-3,
                        "edp_js": m["cost"] ** 2 * 1e-7})
        return out

    res = search(ToySpace(), ev, strategy="evolution", budget=120, pop_size=30, parents=6,
                 fitness="paper-stage1", fitness_bounds="first-population", progress=True)
    assert res.n_evaluations == 120 and res.pareto
    res.to_json(tmp_path / "r.json")
    res.to_csv(tmp_path / "r.csv")
    assert json.loads((tmp_path / "r.json").read_text())["n_evaluations"] == 120
    assert len((tmp_path / "r.csv").read_text().splitlines()) == 121
    from crossnas.search.plots import plot_hypervolume, plot_pareto

    assert plot_pareto(res, tmp_path / "p.png").stat().st_size > 0
    assert plot_hypervolume(res, tmp_path / "h.png").stat().st_size > 0


def test_with_categorical_space_if_available():
    cat = pytest.importorskip("crossnas.space.categorical")
    space = cat.CategoricalSpace({"a": [1, 2, 3, 4], "b": [0.5, 1.0, 2.0], "c": ["x", "y"]},
                                 constraint=lambda d: not (d["a"] == 4 and d["c"] == "y"))

    def ev(archs):
        return [{"accuracy_pim": d["a"] * d["b"] / 8, "edp_js": d["a"] * d["b"] ** 2 + (d["c"] == "y")}
                for d in archs]

    res = search(space, ev, strategy="nsga2", budget=30, pop_size=8, seed=0, progress=False)
    assert res.n_evaluations == 21 and all(not (r["arch"]["a"] == 4 and r["arch"]["c"] == "y")
                                           for r in res.history)


def test_explicit_ref_point_and_resume_with_constraints(tmp_path):
    cons = {"area_mm2": ("<=", 3.0)}
    kw = dict(objectives=OBJ, strategy="nsga2", budget=60, seed=5, pop_size=20, progress=False,
              constraints=cons, ref_point={"acc": 0.0, "cost": 50.0})
    full = search(ToySpace(), toy_evaluate, **kw)
    assert full.hv_ref == [0.0, 50.0] and full.hypervolume[-1] > 0  # minimisation form
    ck = tmp_path / "ck.json"
    with pytest.raises(RuntimeError):
        search(ToySpace(), Counter(fail_at_call=2), checkpoint=ck, **kw)
    res = search(ToySpace(), toy_evaluate, checkpoint=ck, **kw)
    assert [r["key"] for r in res.pareto] == [r["key"] for r in full.pareto]
    with pytest.raises(ValueError, match="seed"):
        search(ToySpace(), toy_evaluate, checkpoint=ck, **{**kw, "seed": 6})
