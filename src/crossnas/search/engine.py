"""The ask/tell search loop: strategies propose, the engine caches, evaluates, logs and checkpoints.

Resume: a checkpoint holds every evaluated record (plus strategy/RNG state, generation, hypervolume
history and reference point). `search(..., checkpoint=path)` on an existing checkpoint re-runs the
strategy from its seed and answers every already-evaluated genome from the checkpoint, so no genome is
evaluated twice and the run continues exactly as an uninterrupted one would.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from crossnas.search import defaults
from crossnas.search.backends import EvaluatorBackend, LocalBackend
from crossnas.search.problem import check_objectives, is_feasible, objective_matrix
from crossnas.search.result import SearchResult, hypervolume, pareto_records
from crossnas.search.store import Store, atomic_write
from crossnas.search.strategies import STRATEGIES
from crossnas.space.base import Space

DEFAULT_OBJECTIVES = defaults.OBJECTIVES
CHECKPOINT_VERSION = 1


def _reference(records: list[dict], objectives: dict[str, str], constraints: dict | None,
               ref_point: Any) -> tuple[list[float], list[float]]:
    """(ideal, ref) in minimisation form from the first population (feasible ones when any)."""
    feas = [r for r in records if is_feasible(r["metrics"], constraints)] or records
    F = objective_matrix([r["metrics"] for r in feas], objectives)
    ideal, nadir = F.min(axis=0), F.max(axis=0)
    if ref_point is None:
        span = np.where(nadir > ideal, nadir - ideal, np.maximum(np.abs(ideal) * 0.1, 1e-9))
        ref = ideal + 1.1 * span
    else:
        vals = [ref_point[k] for k in objectives] if isinstance(ref_point, dict) else list(ref_point)
        ref = objective_matrix([dict(zip(objectives, vals))], objectives)[0]
        ideal = np.minimum(ideal, ref - 1e-9)
    return [float(v) for v in ideal], [float(v) for v in ref]


def _load_checkpoint(path: Path, meta: dict) -> dict[str, dict]:
    """The evaluated records of a checkpoint made with the same `meta` (strategy, seed, objectives,
    hardware, evaluator settings, supernet weights); otherwise a CrossnasError naming the first field."""
    from crossnas.errors import CrossnasError, short
    from crossnas.jsonio import read_json
    from crossnas.pipeline.fingerprint import changed_fields

    hint = "pass --force to start over, or choose another folder"
    ck = read_json(path, "a search checkpoint", hint=hint)
    saved = ck.get("meta")
    if not isinstance(saved, dict) or not isinstance(ck.get("store"), list):
        raise CrossnasError(f"{path}: not a search checkpoint (expected meta and store) ({hint})")
    diff = changed_fields({k: saved.get(k) for k in meta}, meta)
    if diff:
        f = diff[0]
        old, new = (_dotted_get(d, f) for d in (saved, meta))
        raise CrossnasError(f"{path}: made with {f}={short(repr(old), 40)}, not {short(repr(new), 40)}; "
                            f"its results do not apply ({hint})")
    try:
        return {r["key"]: r for r in ck["store"]}
    except (KeyError, TypeError):
        raise CrossnasError(f"{path}: damaged store of evaluated records ({hint})") from None


def _dotted_get(d: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        d = d.get(part) if isinstance(d, dict) else None
    return d


def search(space: Space, evaluate: Callable[[list[dict]], list[dict]], *,
           objectives: dict[str, str] | None = None, strategy: str = defaults.STRATEGY,
           budget: int = defaults.BUDGET, seed: int = defaults.SEED,
           constraints: dict[str, tuple[str, float]] | None = None,
           checkpoint: str | Path | None = None, backend: EvaluatorBackend | None = None,
           pop_size: int | None = None, fitness: Any = None, ref_point: dict | Sequence[float] | None = None,
           progress: bool = True, log_path: str | Path | None = None, max_stall: int = defaults.MAX_STALL,
           surrogate: Any = None, context: dict | None = None, **strategy_kw: Any) -> SearchResult:
    """Search `space` for the Pareto set of `objectives` ({metric: 'min'|'max'}) within `budget`
    distinct canonical evaluations (spent in full unless the space runs out of distinct genomes).

    `pop_size=None` follows the budget rule of `crossnas.search.defaults`. `surrogate` ({model, pool,
    explore}, nsga2 only) ranks a pool of offspring with a model of the expensive metrics; metrics that
    `evaluate.cheap(archs)` returns, when the evaluator has it, are computed exactly and not modelled.
    Extra keywords go to the strategy (e.g. parents=10, mutation_prob). `context` (JSON-able: hardware,
    evaluator settings, ...) is what the scores depend on beyond the search settings; a checkpoint made
    with another context is refused."""
    from crossnas.search.surrogate import surrogate_spec

    objectives = dict(objectives or DEFAULT_OBJECTIVES)
    check_objectives(objectives)
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; choose from {sorted(STRATEGIES)}")
    if budget < 1:
        raise ValueError("budget must be >= 1")
    run_plan = defaults.plan(budget, space, pop_size)
    pop_size = run_plan["pop_size"]
    sur = surrogate_spec(surrogate, strategy)
    meta = {"strategy": strategy, "seed": seed, "pop_size": pop_size, "objectives": objectives,
            "constraints": {k: list(v) for k, v in (constraints or {}).items()},
            "surrogate": None if sur is None else sur.model_dump(), **(context or {})}
    replay: dict[str, dict] = {}
    ck_path = Path(checkpoint) if checkpoint else None
    if ck_path is not None and ck_path.exists():
        replay = _load_checkpoint(ck_path, meta)

    store = Store(log_path)
    if strategy == "evolution":
        strategy_kw.setdefault("fitness", fitness)
    cls = STRATEGIES[strategy]
    if sur is not None:
        from crossnas.search.strategies.surrogate import SurrogateNSGA2Strategy

        cls = SurrogateNSGA2Strategy
        strategy_kw.update(surrogate=sur, cheap=_cheap_metrics(space, evaluate))
    strat = cls(space, objectives, seed=seed, pop_size=pop_size, constraints=constraints,
                seen=store.__contains__, **strategy_kw)
    exact_size = run_plan["space_size"] if callable(getattr(space, "count_configs", None)) else None
    own_backend = backend is None
    backend = backend or LocalBackend()
    gen, stall, hv_hist = 0, 0, []
    ideal = ref = None
    first_obj = next(iter(objectives))
    bar = _Progress(budget, first_obj) if progress else None
    try:
        while len(store) < budget and stall < max_stall and (exact_size is None or len(store) < exact_size):
            proposed = strat.ask()
            genomes, recs_or_keys, new = [], [], {}
            for g in proposed:
                g = space.canonical(np.asarray(g, dtype=np.int64))
                if not space.is_valid(g):
                    raise RuntimeError(f"strategy {strategy!r} proposed an invalid genome {g.tolist()}")
                k = space.key(g)
                if k not in store and k not in new:
                    if len(store) + len(new) >= budget:
                        break
                    new[k] = g
                genomes.append(g)
                recs_or_keys.append(k)
            todo = [k for k in new if k not in replay]
            t0 = time.perf_counter()
            metrics = backend.map(evaluate, [space.decode(new[k]) for k in todo]) if todo else []
            wall = time.perf_counter() - t0
            if len(metrics) != len(todo):
                raise RuntimeError(f"evaluate returned {len(metrics)} results for {len(todo)} candidates")
            fresh = dict(zip(todo, metrics))
            for k, g in new.items():
                if k in fresh:
                    store.add(g, k, space.decode(g), fresh[k], wall / len(todo), gen)
                else:
                    r = replay[k]
                    store.add(np.array(r["genome"]), k, r["arch"], r["metrics"], r["wall_s"], r["generation"],
                              log=False)
            records = [store.get(k) for k in recs_or_keys]
            stall = 0 if new else stall + 1
            if records:
                strat.tell(np.array(genomes, dtype=np.int64), records)
            if ideal is None and len(store):
                ideal, ref = _reference(store.records, objectives, constraints, ref_point)
            hv_hist.append(hypervolume(store.records, objectives, ideal, ref, constraints) if ideal else 0.0)
            gen += 1
            if ck_path is not None:
                ck = {"version": CHECKPOINT_VERSION, "meta": meta, "generation": gen, "store": store.records,
                      "strategy": strat.state(), "hv_history": hv_hist, "hv_ideal": ideal, "hv_ref": ref}
                atomic_write(ck_path, json.dumps(ck))
            if bar is not None:
                best = [r["metrics"][first_obj] for r in store.records]
                fn = max if objectives[first_obj] == "max" else min
                bar.update(gen, len(store), fn(best) if best else float("nan"), hv_hist[-1])
    finally:
        if bar is not None:
            bar.close()
        if own_backend:
            backend.close()
    return SearchResult(pareto=pareto_records(store.records, objectives, constraints),
                        history=list(store.records), hypervolume=hv_hist, objectives=objectives,
                        constraints=constraints, hv_ideal=ideal or [], hv_ref=ref or [], generations=gen,
                        n_evaluations=len(store), meta={**meta, "budget": budget, "plan": run_plan})


def _cheap_metrics(space: Space, evaluate: Any) -> Callable[[np.ndarray], list[dict]] | None:
    """genomes -> the evaluator's cheap metrics (`evaluate.cheap(decoded archs)`), or None without one."""
    cheap = getattr(evaluate, "cheap", None)
    if not callable(cheap):
        return None
    return lambda genomes: list(cheap([space.decode(g) for g in genomes]))


class _Progress:
    """The search's task on the active progress reporter (`crossnas.progress`): one line per generation."""

    def __init__(self, total: int, first: str):
        from crossnas.progress import current

        self.first = first
        self.task = current().task("search", total, "evaluations")

    def update(self, gen: int, evals: int, best: float, hv: float) -> None:
        self.task.advance(evals - self.task.completed, gen=gen, best=best, hv=hv)
        self.task.line(f"generation {gen}, best {self.first} {best:.4g}, hypervolume {hv:.4f}")

    def close(self) -> None:
        self.task.close()
