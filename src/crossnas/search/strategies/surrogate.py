"""Surrogate-assisted NSGA-II: pymoo's mating makes a large pool, a model picks the generation from it.

Generation 0 is NSGA-II's own random population. After it, each `ask` mates the current population into
`pool` offspring new by canonical key, scores them (cheap metrics exactly, expensive ones by a regressor
fitted on every record told so far), and returns pymoo's rank-and-crowding survivors of the predicted
objectives (constraints likewise) plus an `explore` share drawn at random from the rest of the pool.
The true scores go back to NSGA-II through `tell`, as in the plain strategy. Everything is a function of
the seed and the told records, so resume (a replay of the store) reproduces the run.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from pymoo.core.evaluator import Evaluator
from pymoo.core.population import Population
from pymoo.operators.survival.rank_and_crowding import RankAndCrowding
from pymoo.problems.static import StaticProblem

from crossnas.search.problem import constraint_matrix, objective_matrix
from crossnas.search.strategies.base import stack
from crossnas.search.strategies.nsga2 import NSGA2Strategy
from crossnas.search.surrogate import POOL_PER_INDIVIDUAL, SurrogateSpec, features, predict


class SurrogateNSGA2Strategy(NSGA2Strategy):
    def __init__(self, *args: Any, surrogate: SurrogateSpec, cheap: Callable[[np.ndarray], list[dict]] | None
                 = None, seed: int = 0, **kw: Any):
        super().__init__(*args, seed=seed, **kw)
        self.spec, self.cheap, self.seed = surrogate, cheap, seed
        self.pool = int(surrogate.pool or POOL_PER_INDIVIDUAL * self.pop_size)
        self.known: dict[str, dict] = {}  # key -> record, in the order told
        self._cheap: dict[str, dict] = {}
        self.metrics = list(dict.fromkeys([*self.objectives, *(self.constraints or {})]))

    def _cheap_of(self, genomes: list[np.ndarray]) -> list[dict]:
        keys = [self.space.key(g) for g in genomes]
        todo = [i for i, k in enumerate(keys) if k not in self._cheap]
        if self.cheap is not None and todo:
            for i, m in zip(todo, self.cheap(np.stack([genomes[i] for i in todo]))):
                self._cheap[keys[i]] = {k: float(v) for k, v in m.items()}
        return [self._cheap.get(k, {}) for k in keys]

    def ask(self) -> np.ndarray:
        if not self.algorithm.is_initialized or not self.known:
            return super().ask()
        alg = self.algorithm
        off = alg.mating.do(self.problem, alg.pop, self.pool, algorithm=alg, random_state=alg.random_state)
        X = [self.space.canonical(x) for x in np.asarray(off.get("X"), dtype=np.int64)]
        if len(X) <= self.pop_size:
            return self.top_up(X)
        return stack(self.select(X), self.space.n_genes)

    def predicted(self, X: list[np.ndarray]) -> list[dict]:
        """Metric dicts for the pool: cheap metrics exact, the others from the fitted models."""
        cheap = self._cheap_of(X)
        cheap_keys = sorted(k for k in (cheap[0] if cheap else {}))
        out = [dict(m) for m in cheap]
        modelled = [k for k in self.metrics if k not in cheap_keys]
        if modelled:
            recs = list(self.known.values())
            train = [np.asarray(r["genome"], dtype=np.int64) for r in recs]
            Xt = features(self.space, np.stack(train), self._cheap_of(train), cheap_keys)
            Xp = features(self.space, np.stack(X), cheap, cheap_keys)
            for k in modelled:
                y = np.array([float(r["metrics"][k]) for r in recs])
                for m, v in zip(out, predict(self.spec.model, self.seed, Xt, y, Xp)):
                    m[k] = float(v)
        return out

    def select(self, X: list[np.ndarray]) -> list[np.ndarray]:
        """Rank-and-crowding survivors of the predicted scores plus a random `explore` share."""
        pred = self.predicted(X)
        pop = Population.new(X=np.stack(X), idx=np.arange(len(X)))
        kw = {"F": objective_matrix(pred, self.objectives)}
        if self.constraints:
            kw["G"] = constraint_matrix(pred, self.constraints)
        Evaluator().eval(StaticProblem(self.problem, **kw), pop)
        n_explore = int(round(self.spec.explore * self.pop_size))
        best = RankAndCrowding().do(self.problem, pop, n_survive=self.pop_size - n_explore,
                                    random_state=self.rng)
        chosen = [int(i) for i in best.get("idx")]
        rest = np.setdiff1d(np.arange(len(X)), chosen)
        if n_explore:
            chosen += [int(i) for i in self.rng.choice(rest, size=min(n_explore, len(rest)), replace=False)]
        return [X[i] for i in chosen]

    def tell(self, genomes: np.ndarray, records: list[dict]) -> None:
        for r in records:
            self.known.setdefault(r["key"], r)
        super().tell(genomes, records)

    def state(self) -> dict[str, Any]:
        return {**super().state(), "surrogate": self.spec.model_dump(), "pool": self.pool}
