"""Search result: Pareto set, history, hypervolume per generation; JSON/CSV export (atomic)."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pymoo.indicators.hv import HV
from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting

from crossnas.search.problem import is_feasible, objective_matrix
from crossnas.search.store import atomic_write


def nondominated(F: np.ndarray) -> np.ndarray:
    """Indices (ascending) of non-dominated rows (minimisation); among identical rows the first is kept."""
    if not len(F):
        return np.zeros(0, dtype=int)
    idx = np.sort(NonDominatedSorting().do(F, only_non_dominated_front=True))
    _, first = np.unique(F[idx], axis=0, return_index=True)
    return idx[np.sort(first)]


def pareto_records(records: Sequence[dict], objectives: dict[str, str],
                   constraints: dict | None = None) -> list[dict]:
    feas = [r for r in records if is_feasible(r["metrics"], constraints)]
    if not feas:
        return []
    F = objective_matrix([r["metrics"] for r in feas], objectives)
    return [feas[i] for i in nondominated(F)]


def hypervolume(records: Sequence[dict], objectives: dict[str, str], ideal: Sequence[float],
                ref: Sequence[float], constraints: dict | None = None) -> float:
    """HV of the feasible records in normalised minimisation space: (F - ideal)/(ref - ideal), ref -> 1.

    `ideal`/`ref` are in minimisation form ('max' objectives negated). With the engine's defaults `ideal`
    is the first population's ideal point, so later points beyond it can push the value above 1.
    """
    feas = [r for r in records if is_feasible(r["metrics"], constraints)]
    if not feas:
        return 0.0
    ideal_a, ref_a = np.asarray(ideal, float), np.asarray(ref, float)
    F = objective_matrix([r["metrics"] for r in feas], objectives)
    Fn = (F - ideal_a) / np.maximum(ref_a - ideal_a, 1e-12)
    Fn = Fn[np.all(Fn < 1.0, axis=1)]
    if not len(Fn):
        return 0.0
    return float(HV(ref_point=np.ones(F.shape[1]))(Fn))


@dataclass
class SearchResult:
    pareto: list[dict]
    history: list[dict]
    hypervolume: list[float]
    objectives: dict[str, str]
    constraints: dict | None = None
    hv_ideal: list[float] = field(default_factory=list)
    hv_ref: list[float] = field(default_factory=list)
    generations: int = 0
    n_evaluations: int = 0
    meta: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"objectives": self.objectives, "constraints": self.constraints, "pareto": self.pareto,
                "history": self.history, "hypervolume": self.hypervolume, "hv_ideal": self.hv_ideal,
                "hv_ref": self.hv_ref, "generations": self.generations,
                "n_evaluations": self.n_evaluations, "meta": self.meta}

    def to_json(self, path) -> None:
        from crossnas import schema

        schema.write(path, schema.ParetoFile, self.to_dict())

    def to_csv(self, path, which: str = "history") -> None:
        """One row per record (history or pareto): key, generation, wall_s, arch.*, metrics.*."""
        recs = self.history if which == "history" else self.pareto
        arch_cols = sorted({k for r in recs for k in r["arch"]})
        met_cols = sorted({k for r in recs for k in r["metrics"]})
        pareto_keys = {r["key"] for r in self.pareto}
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(["key", "generation", "wall_s", "pareto", *arch_cols, *met_cols])
        for r in recs:
            w.writerow([r["key"], r["generation"], r["wall_s"], r["key"] in pareto_keys,
                        *(r["arch"].get(c) for c in arch_cols), *(r["metrics"].get(c) for c in met_cols)])
        atomic_write(path, buf.getvalue())
