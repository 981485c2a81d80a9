"""Paired comparison of the picked design with the baselines: the interval against scipy's paired t-test
(the final stage's per-image counts: tests/test_pipeline.py)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from crossnas.pipeline.compare import paired_difference


def test_paired_interval_is_the_paired_t_interval():
    rng = np.random.default_rng(0)
    chips, n = 5, 400
    a = rng.binomial(chips, 0.9, n)
    b = np.clip(a - rng.binomial(1, 0.1, n) + rng.binomial(1, 0.05, n), 0, chips)
    d = paired_difference(a.tolist(), b.tolist(), chips)
    ci = stats.ttest_rel(a / chips, b / chips).confidence_interval(0.95)
    assert d["diff"] == pytest.approx((a.mean() - b.mean()) / chips, abs=1e-12)
    assert (d["low"], d["high"]) == pytest.approx((ci.low, ci.high), abs=1e-12)
    assert d["n"] == n
    same = paired_difference(a.tolist(), a.tolist(), chips)  # identical networks: a zero-width interval
    assert same["low"] == same["high"] == same["diff"] == 0.0
    swapped = paired_difference(a.tolist(), np.roll(a, 1).tolist(), chips)  # equal totals, other images
    assert swapped["diff"] == 0.0 and swapped["low"] < 0 < swapped["high"]
    with pytest.raises(ValueError, match="equal, non-empty"):
        paired_difference([1, 0], [1], chips)
