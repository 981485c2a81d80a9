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


def read_terms(v: torch.Tensor, step: float, reads, seed: int) -> tuple[float, float, float]:
    """Calibrated fast-fidelity terms of one tile from its recorded |partial sums| v (float64), through the
    ADC (rounding to `step`), by Monte Carlo on the samples:
    - read-noise variance added to the converted value, (E[(round(u + n) - u)^2] - E[(round(u) - u)^2])
      step^2 (the rounding error alone is rounding_variance's);
    - offset gain: mean code change per LSB of offset, (E[round(u + d)] - E[round(u - d)]) / 2d at d = sigma;
    - INL gain: the same with the bow, d = sigma * bow(u)."""
    if v.numel() == 0:
        return 0.0, 1.0, 1.0
    u = v / step
    r0 = torch.round(u)
    var = 0.0
    if reads.noisy:
        g = torch.Generator().manual_seed(int(seed) % (2**62))
        sig = ((reads.noise_rel * v) ** 2 + reads.noise_floor**2).sqrt() / step
        noisy = torch.round(u + sig * torch.randn(u.shape, generator=g, dtype=u.dtype))
        var = max(float((noisy - u).square().mean() - (r0 - u).square().mean()), 0.0) * step**2

    def gain(d: torch.Tensor, sigma: float) -> float:
        if sigma <= 0:
            return 1.0
        return float((torch.round(u + sigma * d) - torch.round(u - sigma * d)).mean()) / (2 * sigma)

    off = gain(torch.ones_like(u), float(reads.adc_offset.abs().square().mean().sqrt())
               if reads.adc_offset is not None else 0.0)
    inl = gain(reads.bow(u.clone()), float(reads.adc_inl.abs().square().mean().sqrt())
               if reads.adc_inl is not None else 0.0)
    return var, off, inl
