"""The picked design against each baseline on the same test images and chips: the accuracy difference
with a paired 95% interval, and the cost ratios.

Pairing: every final entry is scored on the same seeded test subset over the same chip seeds, and keeps
each image's count of correct chips (`test.correct_chips`). Per image the difference of the two
networks' fractions of correct chips is one paired observation; the images are the sampling unit (the
test set is the sample of the data distribution), so the interval is the mean difference +- t(0.975,
n-1) standard errors of those differences. Two networks that err on the same images have a narrow
interval even when their accuracies are far apart in an unpaired sense: that is the point of pairing.

Comparisons: with the baselines as trained (default chip) and with the best-uniform-bits baselines on
the picked design's own chip (`NAME@design-N`), so every row compares on one chip or says which two.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats


def paired_difference(a: list[int], b: list[int], chips: int) -> dict[str, float]:
    """Mean of (a - b) / chips over images, its 95% interval and the image count."""
    if len(a) != len(b) or not a:
        raise ValueError(f"paired comparison needs equal, non-empty image lists (got {len(a)}, {len(b)})")
    d = (np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)) / chips
    n = len(d)
    mean = (sum(a) - sum(b)) / (chips * n)  # from the integer counts: equal accuracies differ by exactly 0
    se = float(d.std(ddof=1)) / math.sqrt(n) if n > 1 else 0.0
    half = float(stats.t.ppf(0.975, n - 1)) * se if n > 1 else 0.0
    return {"diff": mean, "low": mean - half, "high": mean + half, "n": n}


def _verdict(diff: dict, edp_ratio: float) -> str:
    cheaper = edp_ratio < 1.0
    if diff["low"] > 0 and cheaper:
        return "better on both"
    if diff["diff"] > 0:
        return "more accurate (interval spans 0) and cheaper" if cheaper else "more accurate, costlier"
    if diff["diff"] == 0:
        return "as accurate and cheaper" if cheaper else "as accurate, not cheaper"
    return "cheaper, less accurate" if cheaper else "worse on both"


def compare_picked(entries: list[dict], picked: str | None, chips: int) -> list[dict]:
    """One row per baseline entry on the default chip or on the picked design's chip; [] when the run has
    no picked design or the entries lack per-image counts (a run from before they were kept)."""
    by_name = {e["name"]: e for e in entries}
    design = by_name.get(picked)
    if design is None or design["test"].get("correct_chips") is None:
        return []
    rows = []
    for e in entries:
        if e["kind"] != "baseline" or e["chip"] not in ("default", picked):
            continue
        if e["test"].get("correct_chips") is None:
            continue
        diff = paired_difference(design["test"]["correct_chips"], e["test"]["correct_chips"], chips)
        dt, bt = design["cost"]["totals"], e["cost"]["totals"]
        ratio = {k: float(dt[k]) / float(bt[k]) for k in ("edp_js", "energy_j", "latency_s", "area_mm2")
                 if float(bt[k]) > 0}
        rows.append({"design": picked, "baseline": e["name"], "chip": e["chip"],
                     "same_chip": e["chip"] == picked,
                     "accuracy_pim": float(design["test"]["accuracy_pim"]),
                     "baseline_accuracy_pim": float(e["test"]["accuracy_pim"]),
                     "accuracy_diff": diff, "ratio": ratio,
                     "verdict": _verdict(diff, ratio.get("edp_js", math.inf))})
    return rows
