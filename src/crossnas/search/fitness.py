"""Scalar fitness presets for the `evolution` strategy (paper formulas, acc in percent)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

PAPER_BOUNDS = {"latency_ms": (0.164, 1.414), "energy_mj": (0.033, 63.0)}
PRESETS = {"paper-stage1": (0.8, 0.2), "paper-stage2": (0.99, 0.01)}


def paper_fitness(w_acc: float, w_cost: float, bounds: dict | str | None = None,
                  first_metrics: Sequence[dict] | None = None) -> Callable[[dict], float]:
    """w_acc*acc% - w_cost*Lnorm*Enorm with Lnorm = 100 (L_ms - lo)/(hi - lo), same for E_mJ.

    `bounds`: None -> published bounds; dict overriding latency_ms/energy_mj; 'first-population' -> min/max
    over `first_metrics`.
    """
    b = dict(PAPER_BOUNDS)
    if bounds == "first-population":
        if not first_metrics:
            raise ValueError("'first-population' bounds need the first population's metrics")
        lat = [m["latency_s"] * 1e3 for m in first_metrics]
        en = [m["energy_j"] * 1e3 for m in first_metrics]
        b = {"latency_ms": (min(lat), max(lat)), "energy_mj": (min(en), max(en))}
    elif isinstance(bounds, dict):
        b.update(bounds)
    (l0, l1), (e0, e1) = b["latency_ms"], b["energy_mj"]

    def f(m: dict[str, Any]) -> float:
        lnorm = 100 * (m["latency_s"] * 1e3 - l0) / max(l1 - l0, 1e-12)
        enorm = 100 * (m["energy_j"] * 1e3 - e0) / max(e1 - e0, 1e-12)
        return w_acc * 100 * m["accuracy_pim"] - w_cost * lnorm * enorm

    return f


def make_fitness(spec: Any, objectives: dict[str, str], bounds: Any = None,
                 first_metrics: Sequence[dict] | None = None) -> Callable[[dict], float]:
    """spec: None (first objective, signed so larger is better), a preset name, or a callable(metrics)."""
    if callable(spec):
        return spec
    if spec is None:
        name, sense = next(iter(objectives.items()))
        sign = 1.0 if sense == "max" else -1.0
        return lambda m: sign * float(m[name])
    if spec in PRESETS:
        return paper_fitness(*PRESETS[spec], bounds=bounds, first_metrics=first_metrics)
    raise ValueError(f"unknown fitness {spec!r}; presets: {sorted(PRESETS)}")
