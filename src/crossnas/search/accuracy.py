"""Accuracies as correct-image counts alongside the fraction, so equal accuracies compare exactly.

A mean of per-chip fractions depends on how the correct images fall across chips: 0.90, 0.91, 0.92 and
three times 0.91 average to floats one rounding step apart, and a point at 3x the EDP with "the same"
accuracy then stays on the Pareto front. The evaluator keeps `<metric>_correct` (images right, summed
over chips) and `<metric>_total` (images x chips) and the fraction is their one division, so the same
count is the same float in every comparison: non-domination, hypervolume and selection alike.
"""

from __future__ import annotations

from collections.abc import Sequence


def correct_of(fraction: float, n_images: int) -> int:
    """Images right: `fraction` is correct/n as a float, exact to far below one image for any n < 2**50."""
    return int(round(float(fraction) * n_images))


def accuracy_metrics(name: str, per_chip: Sequence[float], n_images: int) -> dict[str, float | int]:
    """{name: fraction, name_correct: images right over all chips, name_total: images x chips}."""
    correct = sum(correct_of(a, n_images) for a in per_chip)
    total = n_images * len(per_chip)
    return {name: correct / total if total else 0.0, f"{name}_correct": correct, f"{name}_total": total}


def exact_value(metrics: dict, key: str) -> float:
    """The metric as compared: an accuracy from its counts when they are kept, else the value."""
    c, t = metrics.get(f"{key}_correct"), metrics.get(f"{key}_total")
    if c is not None and t:
        return int(c) / int(t)
    return float(metrics[key])


def image_counts(result, n_images: int) -> dict[str, int]:
    """The `_correct` / `_total` counts of a simulator result (`PIMResult`) on `n_images` images."""
    out = {}
    for name, per_chip in (("accuracy_pim", result.per_chip),
                           ("accuracy_digital", [result.accuracy_digital])):
        m = accuracy_metrics(name, per_chip, n_images)
        out.update({k: v for k, v in m.items() if k != name})
    return out
