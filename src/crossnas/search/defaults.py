"""One source of search defaults for `crossnas.search.search` and `SearchConfig`, and the budget rule.

Population size, when not given, follows the budget and the space (docs/search.md):
    pop_size = clip(round(sqrt(budget)), 8, 100), then at most max(2, distinct genomes // 4) and the budget
so a budget of 100 runs 10 generations of 10, 200 runs 15 of 14 and 400 runs 20 of 20: NSGA-II needs
generations as much as it needs a wide population, and a fixed population of 50 left 8 generations at
400 evaluations. Generations are then ceil(budget / pop_size) (the last one cut to the budget).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

STRATEGY = "nsga2"
BUDGET = 200
SEED = 0
MAX_STALL = 5
"""Generations in a row without one new genome before the search stops (space exhausted)."""
OBJECTIVES = {"accuracy_pim": "max", "edp_js": "min"}
POP_MIN, POP_MAX = 8, 100


def space_size(space: Any) -> int | None:
    """Distinct valid canonical genomes when the space can count them, else the product of gene sizes
    (an upper bound); None for a space without genes."""
    count = getattr(space, "count_configs", None)
    if callable(count):
        return int(count())
    sizes = getattr(space, "sizes", None)
    return None if sizes is None else int(np.prod(np.asarray(sizes, dtype=float)))


def auto_pop_size(budget: int, size: int | None = None) -> int:
    """The population-size rule above."""
    pop = min(max(round(math.sqrt(budget)), POP_MIN), POP_MAX)
    if size is not None:
        pop = min(pop, max(2, size // 4))
    return max(2, min(pop, budget))


def plan(budget: int, space: Any, pop_size: int | None) -> dict[str, Any]:
    """{pop_size, generations, pop_size_rule, space_size}: the values a run uses, recorded in its meta."""
    size = space_size(space)
    pop = int(pop_size) if pop_size is not None else auto_pop_size(budget, size)
    return {"pop_size": pop, "generations": math.ceil(budget / pop),
            "pop_size_rule": "given" if pop_size is not None else "auto", "space_size": size}
