"""Uniform random search over valid canonical genomes."""

from __future__ import annotations

import numpy as np

from crossnas.search.strategies.base import Strategy, stack


class RandomStrategy(Strategy):
    def ask(self) -> np.ndarray:
        return stack(self.fresh(self.pop_size, set()), self.space.n_genes)

    def tell(self, genomes: np.ndarray, records: list[dict]) -> None:
        pass
