"""The interface every search space implements: fixed-length integer genomes over categorical genes."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Gene:
    """One categorical decision: a label and its ordered choices. A genome stores the choice index."""

    label: str
    choices: tuple[Any, ...]

    @property
    def size(self) -> int:
        return len(self.choices)

    @property
    def ordered(self) -> bool:
        """Numeric choices (widths, bits, sizes): neighbours in value are neighbours in meaning."""
        return all(isinstance(c, (int, float, np.integer, np.floating)) and not isinstance(c, bool)
                   for c in self.choices)


class Space(ABC):
    """A discrete space: genomes are int64 arrays of shape (n_genes,), gene i in [0, genes[i].size).

    Subclasses implement `genes`, `is_valid` and `canonical`; sampling, mutation and crossover here
    keep results valid and canonical by rejection and repair.
    """

    @property
    @abstractmethod
    def genes(self) -> list[Gene]: ...

    @abstractmethod
    def is_valid(self, genome: np.ndarray) -> bool:
        """Whether the genome describes a buildable candidate."""

    @abstractmethod
    def canonical(self, genome: np.ndarray) -> np.ndarray:
        """The one genome that stands for every genome building the same candidate (idempotent)."""

    # --- shared machinery -------------------------------------------------------------------------
    @property
    def n_genes(self) -> int:
        return len(self.genes)

    @property
    def sizes(self) -> np.ndarray:
        return np.array([g.size for g in self.genes], dtype=np.int64)

    @property
    def labels(self) -> list[str]:
        return [g.label for g in self.genes]

    def decode(self, genome: np.ndarray) -> dict[str, Any]:
        """JSON-able {label: value}."""
        return {g.label: _plain(g.choices[int(i)]) for g, i in zip(self.genes, genome)}

    def encode(self, arch: dict[str, Any]) -> np.ndarray:
        out = np.empty(self.n_genes, dtype=np.int64)
        for k, g in enumerate(self.genes):
            if g.label not in arch:
                raise KeyError(f"architecture lacks gene {g.label!r}")
            try:
                out[k] = list(g.choices).index(arch[g.label])
            except ValueError:
                raise ValueError(
                    f"gene {g.label!r}: {arch[g.label]!r} is not one of {list(g.choices)}") from None
        return out

    def key(self, genome: np.ndarray) -> str:
        """Hashable identity of the canonical form (cache key)."""
        return ",".join(str(int(v)) for v in self.canonical(np.asarray(genome)))

    def sample(self, rng: np.random.Generator, n: int = 1) -> np.ndarray:
        """n valid canonical genomes, shape (n, n_genes); each gene drawn uniformly, invalid ones redrawn."""
        out = np.empty((n, self.n_genes), dtype=np.int64)
        for i in range(n):
            out[i] = self._draw_valid(rng)
        return out

    def _draw_valid(self, rng: np.random.Generator, max_tries: int = 10_000) -> np.ndarray:
        for _ in range(max_tries):
            g = rng.integers(0, self.sizes)
            if self.is_valid(g):
                return self.canonical(g)
        raise RuntimeError("could not draw a valid genome: the space's constraints leave (almost) nothing")

    def mutate(self, genome: np.ndarray, rng: np.random.Generator, prob: float = 0.1) -> np.ndarray:
        """Resample each gene with probability `prob` (to a different choice); redraw until valid."""
        for _ in range(1000):
            child = np.array(genome, dtype=np.int64, copy=True)
            mask = rng.random(self.n_genes) < prob
            if mask.any():
                shift = rng.integers(1, np.maximum(self.sizes[mask], 2))
                child[mask] = (child[mask] + shift) % self.sizes[mask]
            if self.is_valid(child):
                return self.canonical(child)
        return self.canonical(np.asarray(genome))

    def crossover(self, a: np.ndarray, b: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Uniform crossover; redraw the mask until the child is valid (falls back to a parent)."""
        for _ in range(1000):
            child = np.where(rng.random(self.n_genes) < 0.5, a, b).astype(np.int64)
            if self.is_valid(child):
                return self.canonical(child)
        return self.canonical(np.asarray(a))


def _plain(v: Any) -> Any:
    """numpy scalars -> Python scalars so decoded dicts are JSON-able."""
    return v.item() if isinstance(v, np.generic) else v
