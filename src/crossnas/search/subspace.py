"""A view of a space where only some genes vary: the sub-searches of the two-stage flow.

`SubSpace(space, free, fixed)` is itself a `Space` over the free genes; every other gene keeps its value
from `fixed`. Validity and canonical form are the parent's, applied to the completed genome, and
`decode` returns the parent's full decoded architecture, so an evaluator written for the parent space
(e.g. `CrossLayerEvaluator`) scores sub-space candidates unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from crossnas.space.base import Gene, Space

BITS_SUFFIXES = (".wbits", ".abits", ".adc_bits")


def gene_groups(space: Space) -> dict[str, list[int]]:
    """Gene indices by role in a cross-layer space: `network` (block, width per slot), `bits` (weight,
    activation and per-slot ADC bits) and `circuit` (`hw.*`)."""
    groups: dict[str, list[int]] = {"network": [], "bits": [], "circuit": []}
    for i, label in enumerate(space.labels):
        if label.startswith("hw."):
            groups["circuit"].append(i)
        elif label.endswith(BITS_SUFFIXES):
            groups["bits"].append(i)
        else:
            groups["network"].append(i)
    return groups


class SubSpace(Space):
    def __init__(self, parent: Space, free: Sequence[int | str], fixed: Sequence[int] | np.ndarray):
        labels = parent.labels
        idx = []
        for f in free:
            if isinstance(f, str):
                if f not in labels:
                    raise KeyError(f"gene {f!r} is not in the space")
                f = labels.index(f)
            if not 0 <= int(f) < parent.n_genes:
                raise IndexError(f"gene index {f} out of range for {parent.n_genes} genes")
            idx.append(int(f))
        if not idx:
            raise ValueError("a sub-space needs at least one free gene")
        fixed = np.array(fixed, dtype=np.int64, copy=True)
        if fixed.shape != (parent.n_genes,):
            raise ValueError(f"fixed genome must have {parent.n_genes} genes, got shape {fixed.shape}")
        self.parent = parent
        self.free = np.array(sorted(set(idx)), dtype=np.int64)
        self.fixed = fixed
        self._genes = [parent.genes[i] for i in self.free]

    @property
    def genes(self) -> list[Gene]:
        return self._genes

    def full(self, genome: np.ndarray) -> np.ndarray:
        """The parent genome: `fixed` with the free genes taken from `genome`."""
        out = self.fixed.copy()
        out[self.free] = np.asarray(genome, dtype=np.int64)
        return out

    def project(self, full_genome: np.ndarray) -> np.ndarray:
        return np.asarray(full_genome, dtype=np.int64)[self.free].copy()

    def is_valid(self, genome: np.ndarray) -> bool:
        g = np.asarray(genome)
        return g.shape == (self.n_genes,) and bool(self.parent.is_valid(self.full(g)))

    def canonical(self, genome: np.ndarray) -> np.ndarray:
        return self.project(self.parent.canonical(self.full(genome)))

    def full_canonical(self, genome: np.ndarray) -> np.ndarray:
        return self.parent.canonical(self.full(genome))

    def decode(self, genome: np.ndarray) -> dict[str, Any]:
        """The parent's full decoded architecture (fixed genes included)."""
        return self.parent.decode(self.full_canonical(genome))

    def encode(self, arch: dict[str, Any]) -> np.ndarray:
        return self.project(self.parent.encode(arch))

    def to_arch(self, genome: np.ndarray):
        return self.parent.to_arch(self.full_canonical(genome))
