"""Choosing designs from the validation Pareto front: top-k, knee point, or best under a budget."""

from __future__ import annotations

import numpy as np

from crossnas.errors import CrossnasError
from crossnas.search.accuracy import exact_value
from crossnas.search.problem import objective_matrix


def _sense(metric: str) -> str:
    return "max" if metric.startswith("accuracy") else "min"


def _rank(records: list[dict], metric: str, objectives: dict[str, str] | None = None) -> list[dict]:
    """Best `metric` first; equal values (accuracies compare as image counts) go to the better other
    objectives, then to the key."""
    sign = -1.0 if _sense(metric) == "max" else 1.0
    others = {k: v for k, v in (objectives or {}).items() if k != metric}
    rest = objective_matrix([r["metrics"] for r in records], others) if others and records else None
    return [r for _, r in sorted(
        enumerate(records), key=lambda ir: (sign * exact_value(ir[1]["metrics"], metric),
                                            *(rest[ir[0]] if rest is not None else ()), ir[1]["key"]))]


def select_designs(pareto: list[dict], history: list[dict], objectives: dict[str, str], *, rule: str,
                   k: int, metric: str = "accuracy_pim", budget: dict[str, float] | None = None
                   ) -> list[tuple[dict, str]]:
    """[(record, reason)] for at most k designs, in a deterministic order.

    knee: the k front points closest (Euclidean) to the ideal point after scaling every objective to
    [0, 1] over the front. best_under: the k best by `metric` among records within every budget, taken
    from the front when the budget metrics are objectives (the front holds the best there), otherwise
    from the whole history.
    """
    if not pareto:
        raise CrossnasError("select: the search found no feasible design (check search.constraints)")
    for r in pareto:
        if metric not in r["metrics"]:
            raise CrossnasError(f"select.metric: {metric!r} is not a search metric "
                                f"(have {sorted(r['metrics'])})")
    if rule == "top_k":
        return [(r, f"top-{k} by {metric}") for r in _rank(pareto, metric, objectives)[:k]]
    if rule == "knee":
        F = objective_matrix([r["metrics"] for r in pareto], objectives)
        lo, hi = F.min(axis=0), F.max(axis=0)
        Fn = (F - lo) / np.where(hi > lo, hi - lo, 1.0)
        order = np.lexsort((np.arange(len(pareto)), np.linalg.norm(Fn, axis=1)))
        return [(pareto[i], "knee" if j == 0 else f"knee, next {j}") for j, i in enumerate(order[:k])]
    if rule == "best_under":
        budget = budget or {}
        if not budget:
            raise CrossnasError("select.budget: rule best_under needs e.g. {edp_js: 1.0e-9}")
        pool = pareto if set(budget) <= set(objectives) else history
        missing = [m for m in budget if m not in pool[0]["metrics"]]
        if missing:
            raise CrossnasError(f"select.budget: unknown metrics {missing}")
        ok = [r for r in pool if all(float(r["metrics"][m]) <= b for m, b in budget.items())]
        if not ok:
            best = {m: min(float(r["metrics"][m]) for r in pool) for m in budget}
            raise CrossnasError(f"select.budget: no searched design meets {budget}; the lowest found: {best}")
        text = ", ".join(f"{m} <= {b:g}" for m, b in budget.items())
        return [(r, f"best {metric} with {text}") for r in _rank(ok, metric, objectives)[:k]]
    raise CrossnasError(f"select.rule: expected top_k, knee or best_under, got {rule!r}")
