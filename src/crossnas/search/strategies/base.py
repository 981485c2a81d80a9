"""Ask/tell strategy interface."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

import numpy as np

from crossnas.space.base import Space


class Strategy(ABC):
    """Proposes batches of canonical valid genomes (`ask`) and learns from their records (`tell`).

    `seen(key)` tells whether a canonical key has already been evaluated; proposals avoid those.
    """

    def __init__(self, space: Space, objectives: dict[str, str], *, seed: int, pop_size: int,
                 constraints: dict | None = None, seen: Callable[[str], bool] | None = None, **kw: Any):
        self.space, self.objectives, self.constraints = space, objectives, constraints
        self.pop_size = int(pop_size)
        self.rng = np.random.default_rng(seed)
        self.seen = seen or (lambda k: False)

    @abstractmethod
    def ask(self) -> np.ndarray: ...

    @abstractmethod
    def tell(self, genomes: np.ndarray, records: list[dict]) -> None: ...

    def state(self) -> dict[str, Any]:
        """JSON-able state saved in checkpoints (informational; resume replays deterministically)."""
        return {"rng": self.rng.bit_generator.state}

    def fresh(self, n: int, taken: set[str], max_tries: int = 50) -> list[np.ndarray]:
        """Up to n random valid canonical genomes not seen and not in `taken` (updated)."""
        out: list[np.ndarray] = []
        for _ in range(max_tries):
            if len(out) >= n:
                break
            for g in self.space.sample(self.rng, n - len(out)):
                k = self.space.key(g)
                if k not in taken and not self.seen(k):
                    taken.add(k)
                    out.append(g)
        return out


def stack(genomes: list[np.ndarray], n_genes: int) -> np.ndarray:
    return np.array(genomes, dtype=np.int64).reshape(len(genomes), n_genes)
