"""Evolution as published: population P, top-k parents by scalar fitness,
P/2 mutations (per-gene prob), P/2 uniform crossovers, refill with random samples."""

from __future__ import annotations

from typing import Any

import numpy as np

from crossnas.search import variation
from crossnas.search.fitness import make_fitness
from crossnas.search.problem import is_feasible
from crossnas.search.strategies.base import Strategy, stack


class EvolutionStrategy(Strategy):
    def __init__(self, *args: Any, parents: int = 10, n_mutations: int | None = None,
                 n_crossovers: int | None = None, mutation_prob: float = 0.1, fitness: Any = None,
                 fitness_bounds: Any = None, **kw: Any):
        super().__init__(*args, **kw)
        self.n_parents = parents
        self.n_mut = self.pop_size // 2 if n_mutations is None else n_mutations
        self.n_cross = self.pop_size - self.pop_size // 2 if n_crossovers is None else n_crossovers
        self.mutation_prob = mutation_prob
        self.fitness_spec, self.fitness_bounds = fitness, fitness_bounds
        self.fitness = None
        self.population: list[dict] = []   # evaluated records of the current population

    def _score(self, rec: dict) -> float:
        if not is_feasible(rec["metrics"], self.constraints):
            return -np.inf
        return float(self.fitness(rec["metrics"]))

    def parents(self) -> list[dict]:
        order = sorted(range(len(self.population)), key=lambda i: -self._score(self.population[i]))
        return [self.population[i] for i in order[: self.n_parents]]

    def ask(self) -> np.ndarray:
        taken: set[str] = set()
        if not self.population:
            return stack(self.fresh(self.pop_size, taken), self.space.n_genes)
        par = [np.array(r["genome"], dtype=np.int64) for r in self.parents()]
        out: list[np.ndarray] = []

        def used(k: str) -> bool:
            return k in taken or self.seen(k)

        def push(g: np.ndarray) -> None:  # operators retry for a new child; a repeat is dropped here
            k = self.space.key(g)
            if not used(k):
                taken.add(k)
                out.append(g)

        sp, tries = self.space, variation.NEW_TRIES
        for _ in range(self.n_mut):
            p = par[self.rng.integers(len(par))]
            push(variation.mutate(sp, p, self.rng, self.mutation_prob, avoid=used, tries=tries))
        for _ in range(self.n_cross):
            i, j = self.rng.integers(len(par), size=2)
            push(variation.crossover(sp, par[i], par[j], self.rng, avoid=used, tries=tries))
        out += self.fresh(self.n_mut + self.n_cross - len(out), taken)
        return stack(out, self.space.n_genes)

    def tell(self, genomes: np.ndarray, records: list[dict]) -> None:
        if self.fitness is None:
            self.fitness = make_fitness(self.fitness_spec, self.objectives, self.fitness_bounds,
                                        [r["metrics"] for r in records])
            self.population = list(records)
        else:
            self.population = self.parents() + list(records)

    def state(self) -> dict[str, Any]:
        return {**super().state(), "population": [r["key"] for r in self.population]}
