"""NSGA-II through pymoo's ask/tell interface with the space's categorical operators."""

from __future__ import annotations

from typing import Any

import numpy as np
from pymoo.algorithms.moo.nsga2 import NSGA2
from pymoo.core.evaluator import Evaluator
from pymoo.core.termination import NoTermination
from pymoo.problems.static import StaticProblem

from crossnas.search.operators import KeyDuplicateElimination, SpaceCrossover, SpaceMutation, SpaceSampling
from crossnas.search.problem import SpaceProblem, constraint_matrix, objective_matrix
from crossnas.search.strategies.base import Strategy


class NSGA2Strategy(Strategy):
    def __init__(self, *args: Any, mutation_prob: float = 0.1, crossover_prob: float = 0.9,
                 seed: int = 0, **kw: Any):
        super().__init__(*args, seed=seed, **kw)
        self.problem = SpaceProblem(self.space, len(self.objectives), len(self.constraints or {}))
        self.algorithm = NSGA2(
            pop_size=self.pop_size, sampling=SpaceSampling(self.space),
            crossover=SpaceCrossover(self.space, crossover_prob),
            mutation=SpaceMutation(self.space, mutation_prob),
            eliminate_duplicates=KeyDuplicateElimination(self.space, self.seen))
        self.algorithm.setup(self.problem, termination=NoTermination(), seed=seed, verbose=False)
        self._pop = None

    def ask(self) -> np.ndarray:
        self._pop = self.algorithm.ask()
        if self._pop is None or len(self._pop) == 0:  # mating found nothing new (space exhausted)
            self._pop = None
            return np.zeros((0, self.space.n_genes), dtype=np.int64)
        X = np.asarray(self._pop.get("X"), dtype=np.int64)
        return np.stack([self.space.canonical(x) for x in X])

    def tell(self, genomes: np.ndarray, records: list[dict]) -> None:
        pop = self._pop[: len(records)]
        pop.set("X", np.asarray(genomes, dtype=np.int64)[: len(records)])
        metrics = [r["metrics"] for r in records]
        F = objective_matrix(metrics, self.objectives)
        kw = {"F": F}
        if self.constraints:
            kw["G"] = constraint_matrix(metrics, self.constraints)
        Evaluator().eval(StaticProblem(self.problem, **kw), pop)
        self.algorithm.tell(infills=pop)

    def state(self) -> dict[str, Any]:
        rs = self.algorithm.random_state
        pop = self.algorithm.pop
        return {"rng": rs.bit_generator.state if rs is not None else None,
                "population": [] if pop is None else [self.space.key(x) for x in pop.get("X")]}
