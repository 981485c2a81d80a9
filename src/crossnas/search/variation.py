"""Gene-aware mutation and crossover: ordinal moves on ordered genes, today's categorical moves elsewhere.

Ordered genes (`Gene.ordered`: widths, bits, crossbar sizes, anything numeric) move in the order of their
values: mutation steps to a neighbouring value (one step, occasionally more); crossover is simulated binary
crossover (SBX, as pymoo's with rounding) on the value ranks: a child's value lies near one parent's,
mostly on it, sometimes between or just beyond the two. Categorical genes (block kinds, placement names)
keep the space's operators: resampling to a different choice, uniform crossover. Children are redrawn
until valid and returned canonical; `avoid(key)` lets a caller retry until the child is new.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable

import numpy as np

from crossnas.space.base import Space

MAX_TRIES = 1000
NEW_TRIES = 20  # draws a strategy spends looking for a child not yet seen before it gives up
SBX_ETA = 15.0
"""Distribution index of the ordinal (SBX) crossover: pymoo's default for SBX."""
SBX_GENE_PROB = 0.5
"""Share of the differing ordered genes that SBX moves; the rest inherit one parent's value (pymoo's
`prob_var` default)."""


class GeneOrder:
    """Per-gene rank tables of a space: `rank[i][choice index]` and back (`index[i][rank]`)."""

    def __init__(self, space: Space):
        self.sizes = space.sizes
        self.ordered = np.array([g.ordered for g in space.genes], dtype=bool)
        self.rank, self.index = [], []
        for g in space.genes:
            order = np.argsort([float(c) for c in g.choices], kind="stable") if g.ordered else \
                np.arange(g.size)
            self.index.append(order.astype(np.int64))
            self.rank.append(np.argsort(order).astype(np.int64))


_ORDERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def gene_order(space: Space) -> GeneOrder:
    """The rank tables of `space`, built once per space object."""
    if space not in _ORDERS:
        _ORDERS[space] = GeneOrder(space)
    return _ORDERS[space]


def _step(rng: np.random.Generator, rank: int, size: int) -> int:
    """A neighbouring rank: +-1, a further step with probability 1/4 each, reflected at the ends."""
    dist = 1
    while rng.random() < 0.25 and dist < size - 1:
        dist += 1
    new = rank + dist if rng.random() < 0.5 else rank - dist
    if not 0 <= new < size:
        new = rank - dist if new >= size else rank + dist
    return int(min(max(new, 0), size - 1))


def _mutate_once(genome: np.ndarray, order: GeneOrder, rng: np.random.Generator, prob: float) -> np.ndarray:
    child = np.array(genome, dtype=np.int64, copy=True)
    mask = (rng.random(len(child)) < prob) & (order.sizes > 1)
    for i in np.flatnonzero(mask):
        size = int(order.sizes[i])
        if order.ordered[i]:
            child[i] = order.index[i][_step(rng, int(order.rank[i][child[i]]), size)]
        else:
            child[i] = (child[i] + rng.integers(1, size)) % size
    return child


def _sbx_rank(rng: np.random.Generator, x: int, y: int, size: int, eta: float) -> int:
    """One child of bounded simulated binary crossover (Deb & Agrawal 1995, as pymoo's SBX) on the ranks
    x != y within [0, size - 1], rounded: near one parent or the other (each with probability 1/2), the
    spread set by the distribution index `eta` (large: close to a parent; small: wider, beyond both)."""
    lo, hi = (x, y) if x < y else (y, x)
    delta, u = float(hi - lo), rng.random()

    def beta_q(room: float) -> float:
        alpha = 2.0 - (1.0 + 2.0 * room / delta) ** -(eta + 1.0)
        if u <= 1.0 / alpha:
            return (u * alpha) ** (1.0 / (eta + 1.0))
        return (1.0 / (2.0 - u * alpha)) ** (1.0 / (eta + 1.0))

    if rng.random() < 0.5:
        c = 0.5 * (lo + hi - beta_q(lo) * delta)
    else:
        c = 0.5 * (lo + hi + beta_q(size - 1 - hi) * delta)
    return int(min(max(round(c), 0), size - 1))


def _cross_once(a: np.ndarray, b: np.ndarray, order: GeneOrder, rng: np.random.Generator) -> np.ndarray:
    """Each gene from either parent (uniform); a share `SBX_GENE_PROB` of the ordered genes on which the
    parents differ is redrawn by SBX on the ranks instead, so values near (and between) the parents'
    appear while a parent's value, often part of a working combination with its other genes, survives."""
    child = np.where(rng.random(len(a)) < 0.5, a, b).astype(np.int64)
    for i in np.flatnonzero(order.ordered & (a != b)):
        if rng.random() < SBX_GENE_PROB:
            ra, rb = int(order.rank[i][a[i]]), int(order.rank[i][b[i]])
            child[i] = order.index[i][_sbx_rank(rng, ra, rb, int(order.sizes[i]), SBX_ETA)]
    return child


def _valid_new(space: Space, make: Callable[[], np.ndarray], avoid: Callable[[str], bool] | None,
               tries: int) -> np.ndarray | None:
    """First valid child of `make()` whose key `avoid` does not reject (any valid one when none is new)."""
    fallback = None
    for _ in range(tries):
        child = make()
        if not space.is_valid(child):
            continue
        child = space.canonical(child)
        if avoid is None or not avoid(space.key(child)):
            return child
        if fallback is None:
            fallback = child
    return fallback


def mutate(space: Space, genome: np.ndarray, rng: np.random.Generator, prob: float = 0.1, *,
           avoid: Callable[[str], bool] | None = None, tries: int = MAX_TRIES) -> np.ndarray:
    """Each gene moves with probability `prob` (ordinal step or categorical resample); valid, canonical."""
    order = gene_order(space)
    g = np.asarray(genome, dtype=np.int64)
    child = _valid_new(space, lambda: _mutate_once(g, order, rng, prob), avoid, tries)
    return space.canonical(g) if child is None else child


def crossover(space: Space, a: np.ndarray, b: np.ndarray, rng: np.random.Generator, *,
              avoid: Callable[[str], bool] | None = None, tries: int = MAX_TRIES) -> np.ndarray:
    """Uniform on categorical genes, SBX on the ranks of ordered ones; valid, canonical."""
    order = gene_order(space)
    a, b = np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64)
    child = _valid_new(space, lambda: _cross_once(a, b, order, rng), avoid, tries)
    return space.canonical(a) if child is None else child
