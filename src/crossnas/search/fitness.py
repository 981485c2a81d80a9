"""Scalar fitness presets for the `evolution` strategy (paper formulas, acc in percent)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from crossnas.errors import CrossnasError

PAPER_BOUNDS = {"latency_ms": (0.164, 1.414), "energy_mj": (0.033, 63.0)}
PRESETS = {"paper-stage1": (0.8, 0.2), "paper-stage2": (0.99, 0.01)}
MAX_CLIPPED = 0.05  # a search whose first population has more values outside the bounds fails
log = logging.getLogger("crossnas.search")
_EPS = 1e-9  # rounding of ms/mJ conversions at the bounds themselves is not clipping


def normalised(m: dict[str, Any], bounds: dict) -> tuple[float, float]:
    """(Lnorm, Enorm) = 100 (x - lo) / (hi - lo) of latency in ms and energy in mJ, unclipped."""
    (l0, l1), (e0, e1) = bounds["latency_ms"], bounds["energy_mj"]
    return (100 * (m["latency_s"] * 1e3 - l0) / max(l1 - l0, 1e-12),
            100 * (m["energy_j"] * 1e3 - e0) / max(e1 - e0, 1e-12))


def clipped_share(metrics: Sequence[dict], bounds: dict) -> float:
    """Share of candidates whose normalised latency or energy falls outside [0, 100]."""
    if not metrics:
        return 0.0
    out = sum(any(not -_EPS <= v <= 100.0 + _EPS for v in normalised(m, bounds)) for m in metrics)
    return out / len(metrics)


def check_bounds(metrics: Sequence[dict], bounds: dict, where: str = "search.fitness_bounds") -> float:
    """The clipped share of `metrics`, logged; a CrossnasError naming `where` above MAX_CLIPPED."""
    share = clipped_share(metrics, bounds)
    log.info("fitness bounds %s: %.1f%% of %d normalised values clipped to [0, 100]", bounds, 100 * share,
             len(metrics))
    if share > MAX_CLIPPED:
        raise CrossnasError(f"{where}: {100 * share:.0f}% of {len(metrics)} candidates fall outside the "
                            f"fitness bounds {bounds} (at most {100 * MAX_CLIPPED:.0f}% may be clipped); "
                            "widen "
                            "them or leave them unset to take the space's own range")
    return share


def paper_fitness(w_acc: float, w_cost: float, bounds: dict | str | None = None,
                  first_metrics: Sequence[dict] | None = None) -> Callable[[dict], float]:
    """w_acc*acc% - w_cost*Lnorm*Enorm, Lnorm = 100 (L_ms - lo)/(hi - lo) clipped to [0, 100], same for
    E_mJ (a value outside the bounds can then never reward a higher cost).

    `bounds`: None -> published bounds; dict overriding latency_ms/energy_mj; 'first-population' -> min/max
    over `first_metrics`. With `first_metrics`, more than MAX_CLIPPED of them outside the bounds is an error.
    The returned function counts what it clipped in `.stats` ({"clipped", "total"}).
    """
    b = dict(PAPER_BOUNDS)
    if bounds == "first-population":
        if not first_metrics:
            raise ValueError("'first-population' bounds need the first population's metrics")
        lat = [m["latency_s"] * 1e3 for m in first_metrics]
        en = [m["energy_j"] * 1e3 for m in first_metrics]
        b = {"latency_ms": (min(lat), max(lat)), "energy_mj": (min(en), max(en))}
    elif isinstance(bounds, dict):
        b.update({k: tuple(v) for k, v in bounds.items() if k in PAPER_BOUNDS})
    if first_metrics:
        check_bounds(first_metrics, b)
    stats = {"clipped": 0, "total": 0}

    def f(m: dict[str, Any]) -> float:
        lnorm, enorm = normalised(m, b)
        stats["total"] += 1
        if not (-_EPS <= lnorm <= 100.0 + _EPS and -_EPS <= enorm <= 100.0 + _EPS):
            stats["clipped"] += 1
        lnorm, enorm = min(max(lnorm, 0.0), 100.0), min(max(enorm, 0.0), 100.0)
        return w_acc * 100 * m["accuracy_pim"] - w_cost * lnorm * enorm

    f.stats, f.bounds = stats, b  # type: ignore[attr-defined]
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
