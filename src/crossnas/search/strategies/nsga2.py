"""NSGA-II through pymoo's ask/tell interface with the gene-aware operators of `crossnas.search.variation`.

pymoo's mating retries (up to 100 rounds) for offspring new by canonical key; when it still falls short
of a full population, fresh random genomes fill the rest, so a generation spends its share of the budget.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pymoo.algorithms.moo.nsga2 import NSGA2
from pymoo.core.evaluator import Evaluator
from pymoo.core.population import Population
from pymoo.core.termination import NoTermination
from pymoo.problems.static import StaticProblem

from crossnas.search.operators import KeyDuplicateElimination, SpaceCrossover, SpaceMutation, SpaceSampling
from crossnas.search.problem import SpaceProblem, constraint_matrix, objective_matrix
from crossnas.search.strategies.base import Strategy, stack


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

    def ask(self) -> np.ndarray:
        off = self.algorithm.ask()
        X = [] if off is None else [self.space.canonical(x) for x in np.asarray(off.get("X"), dtype=np.int64)]
        return self.top_up(X)

    def top_up(self, X: list[np.ndarray]) -> np.ndarray:
        """X, then fresh random genomes (new by key) up to a full population."""
        taken = {self.space.key(x) for x in X}
        X = list(X) + self.fresh(self.pop_size - len(X), taken) if len(X) < self.pop_size else list(X)
        return stack(X, self.space.n_genes)

    def tell(self, genomes: np.ndarray, records: list[dict]) -> None:
        if not records:
            return
        pop = Population.new(X=np.asarray(genomes, dtype=np.int64)[: len(records)])
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
