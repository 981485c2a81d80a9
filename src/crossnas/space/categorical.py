"""A plain product of categorical genes, optionally filtered by a constraint on the decoded dict."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from crossnas.space.base import Gene, Space


class CategoricalSpace(Space):
    """Every combination of choices is valid unless `constraint(decoded_dict)` returns False.

    Canonical form is the identity (every genome is its own candidate).
    """

    def __init__(
        self, choices: dict[str, list[Any]], constraint: Callable[[dict[str, Any]], bool] | None = None
    ):
        if not choices:
            raise ValueError("CategoricalSpace needs at least one gene")
        for name, ch in choices.items():
            if len(ch) == 0:
                raise ValueError(f"gene {name!r} has no choices")
        self._genes = [Gene(str(k), tuple(v)) for k, v in choices.items()]
        self.constraint = constraint

    @property
    def genes(self) -> list[Gene]:
        return self._genes

    def is_valid(self, genome: np.ndarray) -> bool:
        g = np.asarray(genome)
        if g.shape != (self.n_genes,) or (g < 0).any() or (g >= self.sizes).any():
            return False
        return True if self.constraint is None else bool(self.constraint(self.decode(g)))

    def canonical(self, genome: np.ndarray) -> np.ndarray:
        return np.asarray(genome, dtype=np.int64).copy()
