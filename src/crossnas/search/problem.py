"""Objective/constraint bookkeeping and the pymoo problem description (integer variables)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pymoo.core.problem import Problem

from crossnas.search.accuracy import exact_value
from crossnas.space.base import Space

Constraints = dict[str, tuple[str, float]]


def objective_matrix(metrics: Sequence[dict], objectives: dict[str, str]) -> np.ndarray:
    """Minimisation form: 'max' objectives negated. Shape (n, n_obj). Accuracies kept as image counts
    are taken from them (`search.accuracy`), so equal counts are equal here."""
    F = np.array([[exact_value(m, k) for k in objectives] for m in metrics],
                 dtype=float).reshape(len(metrics), -1)
    sign = np.array([-1.0 if s == "max" else 1.0 for s in objectives.values()])
    return F * sign


def constraint_matrix(metrics: Sequence[dict], constraints: Constraints | None) -> np.ndarray:
    """pymoo G (<= 0 feasible): value - bound for '<=', bound - value for '>='."""
    cons = constraints or {}
    G = np.zeros((len(metrics), len(cons)))
    for j, (name, (op, bound)) in enumerate(cons.items()):
        if op not in ("<=", ">="):
            raise ValueError(f"constraint {name!r}: operator must be '<=' or '>=', got {op!r}")
        for i, m in enumerate(metrics):
            v = exact_value(m, name)
            G[i, j] = v - bound if op == "<=" else bound - v
    return G


def is_feasible(metrics: dict, constraints: Constraints | None) -> bool:
    return not constraints or bool(np.all(constraint_matrix([metrics], constraints) <= 0))


def check_objectives(objectives: dict[str, str]) -> None:
    if not objectives:
        raise ValueError("at least one objective is needed")
    for k, s in objectives.items():
        if s not in ("min", "max"):
            raise ValueError(f"objective {k!r}: sense must be 'min' or 'max', got {s!r}")


class SpaceProblem(Problem):
    """Integer variables gene i in [0, size_i - 1]; evaluation happens outside (ask/tell)."""

    def __init__(self, space: Space, n_obj: int, n_constr: int):
        super().__init__(n_var=space.n_genes, n_obj=n_obj, n_ieq_constr=n_constr, xl=0,
                         xu=space.sizes - 1, vtype=int)

    def _evaluate(self, x, out, *args, **kwargs):  # pragma: no cover - ask/tell only
        raise RuntimeError("SpaceProblem is evaluated by the search engine")
