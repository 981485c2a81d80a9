"""Budget-aware search: default population rule, exact budgets in distinct canonical genomes, ordinal
operators, and the surrogate-assisted mode (cheap metrics, resume, backends)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from crossnas.errors import CrossnasError
from crossnas.search import LocalBackend, ProcessPoolBackend, defaults, search, variation
from crossnas.search.config import load_search_config
from crossnas.search.strategies.surrogate import SurrogateNSGA2Strategy
from crossnas.search.surrogate import SurrogateSpec
from crossnas.space.base import Gene, Space
from test_search import OBJ, ToySpace, toy_evaluate


class CheapToy:
    """Toy evaluator declaring `cost` and `area_mm2` cheap; counts both kinds of call (picklable)."""

    def __init__(self, fail_at_call: int | None = None):
        self.full, self.cheap_n, self.calls, self.fail_at_call = [], 0, 0, fail_at_call

    def __call__(self, archs):
        self.calls += 1
        if self.fail_at_call is not None and self.calls == self.fail_at_call:
            raise RuntimeError("boom")
        self.full += [json.dumps(a, sort_keys=True) for a in archs]
        return toy_evaluate(archs)

    def cheap(self, archs):
        self.cheap_n += len(archs)
        return [{"cost": m["cost"], "area_mm2": m["area_mm2"]} for m in toy_evaluate(archs)]


class Aliased(Space):
    """Many genomes per candidate: `mode` 0 makes genes b and c irrelevant (101 distinct of 200)."""

    _genes = [Gene("mode", (0, 1)), Gene("a", (1, 2, 4, 8, 16)), Gene("b", ("x", "y", "z", "w")),
              Gene("c", (3, 1, 2, 0, 4))]  # numeric out of order: ordinal moves follow values

    @property
    def genes(self):
        return self._genes

    def is_valid(self, g):
        return not (g[1] == 4 and g[3] == 4)

    def canonical(self, g):
        g = np.array(g, dtype=np.int64, copy=True)
        if g[0] == 0:
            g[2] = g[3] = 0
        return g


def aliased_eval(archs):
    return [{"acc": a["a"] * (1 + a["mode"]) + 0.1 * a["c"] + 0.01 * "xyzw".index(a["b"]),
             "cost": a["a"] ** 1.5 + a["c"]} for a in archs]


def test_population_rule_and_one_source_of_defaults():
    assert [defaults.auto_pop_size(b) for b in (60, 100, 200, 400, 10_000, 5)] == [8, 10, 14, 20, 100, 5]
    assert defaults.auto_pop_size(400, size=40) == 10  # a quarter of a small space
    cfg = load_search_config({})
    assert (cfg.budget, cfg.strategy, cfg.seed, cfg.max_stall, cfg.pop_size) == (
        defaults.BUDGET, defaults.STRATEGY, defaults.SEED, defaults.MAX_STALL, None)
    res = search(ToySpace(), toy_evaluate, objectives=OBJ, budget=200, progress=False)
    plan = res.meta["plan"]
    assert plan == {"pop_size": 14, "generations": 15, "pop_size_rule": "auto",
                    "space_size": plan["space_size"]} and res.meta["pop_size"] == 14
    assert res.generations == plan["generations"]  # every generation spent a full population
    given = search(ToySpace(), toy_evaluate, objectives=OBJ, budget=50, pop_size=7, progress=False)
    assert given.meta["plan"]["pop_size_rule"] == "given" and given.generations == math.ceil(50 / 7)


@pytest.mark.parametrize("strategy, surrogate", [("nsga2", None), ("evolution", None), ("random", None),
                                                 ("nsga2", {"model": "gbm", "pool": 60})])
@pytest.mark.parametrize("budget", [40, 71])
def test_budget_spent_exactly_in_distinct_canonical_genomes(strategy, surrogate, budget):
    space, seen = Aliased(), []

    def ev_fn(archs):
        seen.extend(json.dumps(a, sort_keys=True) for a in archs)
        return aliased_eval(archs)

    res = search(space, ev_fn, objectives=OBJ, strategy=strategy, budget=budget, seed=0, progress=False,
                 surrogate=surrogate)
    keys = [r["key"] for r in res.history]
    assert len(seen) == len(set(seen)) == budget == len(set(keys)) == res.n_evaluations
    for r in res.history:  # each record is its canonical, valid genome
        g = np.array(r["genome"])
        assert space.is_valid(g) and np.array_equal(space.canonical(g), g) and r["key"] == space.key(g)


def test_search_stops_only_when_distinct_genomes_run_out():
    space = Aliased()
    distinct = {space.key(g) for g in np.ndindex(*space.sizes) if space.is_valid(np.array(g))}
    res = search(space, aliased_eval, objectives=OBJ, budget=500, seed=1, progress=False)
    assert res.n_evaluations == len(distinct) == 101


def test_ordinal_operators_stay_in_range_valid_and_step_to_neighbours():
    space, rng = Aliased(), np.random.default_rng(0)
    order = variation.gene_order(space)
    assert order.ordered.tolist() == [True, True, False, True]
    assert [space.genes[3].choices[i] for i in order.index[3]] == [0, 1, 2, 3, 4]
    steps, cats, inherit = [], set(), []
    parents = space.sample(rng, 300)
    for p, q in zip(parents, parents[::-1]):
        m = variation.mutate(space, p, rng, prob=0.5)
        c = variation.crossover(space, p, q, rng)
        for x in (m, c):
            assert space.is_valid(x) and np.array_equal(space.canonical(x), x)
            assert ((0 <= x) & (x < space.sizes)).all()
        if p[0] == 1 and m[0] == 1 and m[3] != p[3]:  # ordered gene c moved: by rank distance
            steps.append(abs(int(order.rank[3][m[3]]) - int(order.rank[3][p[3]])))
        if p[0] == 1 and m[0] == 1:
            cats.add(int(m[2]))
        if p[1] != q[1]:  # ordinal (SBX) crossover: the child takes a parent's value, rarely a near one
            inherit.append(int(c[1] == p[1]) - int(c[1] == q[1]))
    assert steps and np.mean(np.array(steps) == 1) > 0.6 and max(steps) < 5
    assert inherit and 0.3 < np.mean(np.array(inherit) == 1) < 0.7 and np.mean(np.array(inherit) != 0) > 0.9
    assert cats == {0, 1, 2, 3}  # categorical gene still resampled over every choice
    seen = {space.key(x) for x in parents}
    assert space.key(variation.crossover(space, parents[0], parents[0], rng)) == space.key(parents[0])
    fresh = variation.mutate(space, parents[0], rng, 0.3, avoid=seen.__contains__, tries=200)
    assert space.key(fresh) not in seen  # retries until the child is new


def test_sbx_rank_stays_in_range_near_the_parents_and_spreads_with_a_low_index():
    rng = np.random.default_rng(0)
    for eta, share_off in ((15.0, 0.05), (1.0, 0.2)):
        kids = np.array([variation._sbx_rank(rng, 1, 4, 6, eta) for _ in range(2000)])
        assert ((0 <= kids) & (kids <= 5)).all() and {1, 4} <= set(kids.tolist())
        off = np.mean((kids != 1) & (kids != 4))  # between or beyond the parents
        assert (off < share_off) if eta > 10 else (off > share_off)
        assert abs(np.mean(kids <= 2) - 0.5) < 0.05  # near either parent equally often


def test_surrogate_models_only_expensive_metrics_and_charges_only_the_budget():
    ev = CheapToy()
    res = search(ToySpace(), ev, objectives=OBJ, budget=60, seed=0, surrogate={"model": "rf", "pool": 50},
                 constraints={"area_mm2": ("<=", 4.0)}, progress=False)
    assert len(ev.full) == len(set(ev.full)) == 60 == res.n_evaluations
    assert ev.cheap_n > 60  # whole pools scored by the cheap metrics, outside the budget
    assert res.meta["surrogate"] == {"model": "rf", "pool": 50, "explore": 0.1}
    space = ToySpace()
    strat = SurrogateNSGA2Strategy(space, OBJ, seed=0, pop_size=8, surrogate=SurrogateSpec(),
                                   cheap=lambda G: CheapToy().cheap([space.decode(g) for g in G]))
    X = strat.ask()
    recs = [{"key": space.key(g), "genome": g.tolist(), "metrics": m}
            for g, m in zip(X, toy_evaluate([space.decode(g) for g in X]))]
    strat.tell(X, recs)
    pool = list(space.sample(np.random.default_rng(1), 30))
    pred = strat.predicted(pool)
    exact = toy_evaluate([space.decode(g) for g in pool])
    assert [p["cost"] for p in pred] == [m["cost"] for m in exact]  # cheap objective: exact
    assert [p["acc"] for p in pred] != [m["acc"] for m in exact]  # expensive objective: modelled


@pytest.mark.parametrize("model", ["gbm", "rf"])
def test_resume_of_a_cut_surrogate_search_equals_an_uninterrupted_one(model, tmp_path):
    kw = dict(objectives=OBJ, budget=70, seed=4, pop_size=10, surrogate={"model": model, "pool": 40},
              progress=False)
    full = search(ToySpace(), CheapToy(), **kw)
    ck = tmp_path / "ck.json"
    with pytest.raises(RuntimeError, match="boom"):
        search(ToySpace(), CheapToy(fail_at_call=4), checkpoint=ck, **kw)
    rest = CheapToy()
    res = search(ToySpace(), rest, checkpoint=ck, **kw)
    assert len(rest.full) == 70 - 30  # three generations of 10 were kept
    assert [(r["key"], r["metrics"]) for r in res.history] == [(r["key"], r["metrics"]) for r in full.history]
    assert res.hypervolume == full.hypervolume
    with pytest.raises(ValueError, match="surrogate"):  # plain NSGA-II cannot continue it
        search(ToySpace(), CheapToy(), checkpoint=ck, **{**kw, "surrogate": None})
    with pytest.raises(ValueError, match="surrogate"):  # another model is another run
        search(ToySpace(), CheapToy(), checkpoint=ck, **{**kw, "surrogate": {"model": "gbm" if model == "rf"
                                                                              else "rf", "pool": 40}})


def test_surrogate_logs_identical_on_local_and_process_pool(tmp_path):
    kw = dict(objectives=OBJ, budget=40, seed=2, pop_size=8, surrogate={"model": "gbm", "pool": 30},
              progress=False)
    search(ToySpace(), CheapToy(), backend=LocalBackend(), log_path=tmp_path / "a.jsonl", **kw)
    pool = ProcessPoolBackend(workers=2)
    try:
        search(ToySpace(), CheapToy(), backend=pool, log_path=tmp_path / "b.jsonl", **kw)
    finally:
        pool.close()

    def lines(p):
        return [{k: v for k, v in json.loads(x).items() if k != "wall_s"} for x in p.read_text().splitlines()]

    a, b = lines(tmp_path / "a.jsonl"), lines(tmp_path / "b.jsonl")
    assert len(a) == 40 and a == b


def test_surrogate_settings_are_checked():
    with pytest.raises(CrossnasError, match=r"^config\.search\.surrogate"):
        load_search_config({"strategy": "evolution", "surrogate": {"model": "gbm"}})
    with pytest.raises(CrossnasError, match=r"^config\.search\.surrogate\.model"):
        load_search_config({"surrogate": {"model": "svm"}})
    with pytest.raises(CrossnasError, match=r"^config\.search\.surrogate\.pools"):
        load_search_config({"surrogate": {"pools": 3}})
    assert load_search_config({"surrogate": {"model": "none"}}).search_kwargs()["surrogate"].model == "none"
    with pytest.raises(ValueError, match="nsga2"):
        search(ToySpace(), toy_evaluate, objectives=OBJ, strategy="random", budget=5,
               surrogate={"model": "rf"}, progress=False)
