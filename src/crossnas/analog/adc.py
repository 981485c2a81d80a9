"""ADC: step per tile (full scale or calibrated range, per layer or per row tile), calibration of the
range from observed partial sums, and the fast-fidelity model of each conversion's error.

Code = clip(round(ps / step)), step = max(FS / qmax, 1): the ADC never resolves finer than one unit
partial sum (docs/analog.md).
"""

from __future__ import annotations

import math

import torch

CAL_ROWS = 4096  # output rows per layer and calibration batch whose partial sums are recorded
CAL_SAMPLES = 200_000  # partial sums kept per recorded tensor (a fixed random subset)

_SAMPLE_INDEX: dict[int, torch.Tensor] = {}


def _sample_index(n: int) -> torch.Tensor:
    """CAL_SAMPLES fixed pseudo-random positions out of n (cached: calibration records many tensors)."""
    if n not in _SAMPLE_INDEX:
        if len(_SAMPLE_INDEX) > 64:
            _SAMPLE_INDEX.clear()
        g = torch.Generator().manual_seed(0)
        _SAMPLE_INDEX[n] = torch.randint(n, (CAL_SAMPLES,), generator=g)
    return _SAMPLE_INDEX[n]


def adc_step(fs_full: torch.Tensor, fs_cal: torch.Tensor, qmax: int, calibrated: bool) -> torch.Tensor:
    """Per-tile ADC step (T,); a calibrated range (0 = not calibrated) caps the full scale."""
    fs = fs_full
    if calibrated and bool((fs_cal > 0).all()):
        fs = torch.minimum(fs, fs_cal)
    return (fs / qmax).clamp_min(1.0)


class RangeRecorder:
    """|partial sums| recorded per row tile during calibration."""

    def __init__(self, T: int):
        self.samples: list[list[torch.Tensor]] = [[] for _ in range(T)]

    def record(self, t: int, ps: torch.Tensor) -> None:
        v = ps.reshape(-1)
        if v.numel() > CAL_SAMPLES:
            v = v[_sample_index(v.numel()).to(v.device)]
        self.samples[t].append(v.abs().float().cpu())

    def tile(self, t: int) -> torch.Tensor:
        return torch.cat(self.samples[t])[:2_000_000] if self.samples[t] else torch.zeros(0)

    @property
    def empty(self) -> bool:
        return not any(self.samples)


def percentile_range(v: torch.Tensor, percentile: float) -> float:
    """The `percentile` (nearest rank) of the values, at least 1."""
    if v.numel() == 0:
        return 0.0
    k = min(v.numel(), max(1, math.ceil(percentile / 100.0 * v.numel())))
    return max(float(torch.kthvalue(v, k).values), 1.0)


def rounding_variance(step: torch.Tensor, chunk_w: torch.Tensor, col_w: torch.Tensor,
                      analog_sums: bool) -> torch.Tensor:
    """Variance of an output from the ADC rounding: step^2/12 per conversion, summed over the conversions
    (chunks x slices x arrays x tiles) with their shift-and-add weights squared. Integer partial sums at
    step 1 have no rounding error; non-integer (analog) sums do."""
    coef2 = (chunk_w**2).sum() * (col_w**2).sum()
    per = step**2 / 12.0 if analog_sums else step**2 / 12.0 * (step > 1.0)
    return per.sum() * coef2
