"""pymoo operators over a `Space`: always-valid, canonical genomes (moves in `crossnas.search.variation`)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from pymoo.core.crossover import Crossover
from pymoo.core.duplicate import DuplicateElimination
from pymoo.core.mutation import Mutation
from pymoo.core.sampling import Sampling

from crossnas.search import variation
from crossnas.space.base import Space


def _rng(random_state) -> np.random.Generator:
    return random_state if isinstance(random_state, np.random.Generator) else np.random.default_rng()


class SpaceSampling(Sampling):
    def __init__(self, space: Space):
        super().__init__()
        self.space = space

    def _do(self, problem, n_samples, *args, random_state=None, **kwargs):
        return self.space.sample(_rng(random_state), n_samples)


class SpaceMutation(Mutation):
    """Each gene moves with probability `gene_prob`: neighbour step if ordered, resample if categorical."""

    def __init__(self, space: Space, gene_prob: float = 0.1):
        super().__init__(prob=1.0)
        self.space, self.gene_prob = space, gene_prob

    def _do(self, problem, X, *args, random_state=None, **kwargs):
        rng = _rng(random_state)
        return np.stack([variation.mutate(self.space, x, rng, self.gene_prob) for x in X])


class SpaceCrossover(Crossover):
    """Ordinal crossover on ordered genes, uniform on categorical ones; two parents, one child."""

    def __init__(self, space: Space, prob: float = 0.9):
        super().__init__(2, 1, prob=prob)
        self.space = space

    def _do(self, problem, X, *args, random_state=None, **kwargs):
        rng = _rng(random_state)
        _, n_matings, n_var = X.shape
        out = np.empty((1, n_matings, n_var), dtype=np.int64)
        for k in range(n_matings):
            out[0, k] = variation.crossover(self.space, X[0, k], X[1, k], rng)
        return out


class KeyDuplicateElimination(DuplicateElimination):
    """Duplicates by canonical key, within the batch, against `others`, and against `seen(key)`."""

    def __init__(self, space: Space, seen: Callable[[str], bool] | None = None):
        super().__init__()
        self.space, self.seen = space, seen

    def _keys(self, pop) -> list[str]:
        return [self.space.key(np.asarray(x, dtype=np.int64)) for x in pop.get("X")]

    def _do(self, pop, other, is_duplicate):
        keys = self._keys(pop)
        taken = set() if other is None else set(self._keys(other))
        for i, k in enumerate(keys):
            if k in taken or (self.seen is not None and self.seen(k)):
                is_duplicate[i] = True
            elif other is None:
                taken.add(k)
        return is_duplicate
