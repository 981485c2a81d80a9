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
GROUP_SAMPLES = 2_000  # per (tile, array-slice, chunk) and recorded tensor, for the fast-fidelity terms
SHIFT_SAMPLES = 256  # of those, kept per chip redraw for the ADC offset/INL shift of each column

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
    """|partial sums| recorded per row tile during calibration; with `groups=(AS, C)` also a fixed subset
    of the signed partial sums per (tile, converted array-slice, input chunk), for the read-effect terms."""

    def __init__(self, T: int, groups: tuple[int, int] | None = None):
        self.samples: list[list[torch.Tensor]] = [[] for _ in range(T)]
        self.groups = groups
        self.grouped: list[list[torch.Tensor]] = [[] for _ in range(T)]

    def record(self, t: int, ps: torch.Tensor) -> None:
        v = ps.reshape(-1)
        if v.numel() > CAL_SAMPLES:
            v = v[_sample_index(v.numel()).to(v.device)]
        self.samples[t].append(v.abs().float().cpu())
        if self.groups is not None:
            AS, C = self.groups
            g = ps.reshape(AS, -1, C).transpose(1, 2)  # (AS, C, columns x positions)
            n = g.shape[-1]
            if n > GROUP_SAMPLES:
                g = g[..., _sample_index(n)[:GROUP_SAMPLES].to(g.device)]
            self.grouped[t].append(g.float().cpu())

    def tile(self, t: int) -> torch.Tensor:
        return torch.cat(self.samples[t])[:2_000_000] if self.samples[t] else torch.zeros(0)

    def tile_groups(self, t: int) -> torch.Tensor:
        """(AS, C, n) signed partial sums of tile t."""
        return torch.cat(self.grouped[t], -1) if self.grouped[t] else torch.zeros(0)

    @property
    def empty(self) -> bool:
        return not any(self.samples)


def percentile_range(v: torch.Tensor, percentile: float) -> float:
    """The `percentile` (nearest rank) of the values, at least 1."""
    if v.numel() == 0:
        return 0.0
    k = min(v.numel(), max(1, math.ceil(percentile / 100.0 * v.numel())))
    return max(float(torch.kthvalue(v, k).values), 1.0)


def rounding_variance(step: torch.Tensor, chunk_w: torch.Tensor, col_w: torch.Tensor) -> torch.Tensor:
    """Variance of an output from the ADC rounding: step^2/12 per conversion, summed over the conversions
    (chunks x slices x arrays x tiles) with their shift-and-add weights squared; integer partial sums at
    step 1 have no rounding error."""
    coef2 = (chunk_w**2).sum() * (col_w**2).sum()
    per = step**2 / 12.0 * (step > 1.0)
    return per.sum() * coef2


def conversion_terms(v: torch.Tensor, step: float, plan, reads, seed: int
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """Calibrated conversion error of one tile from its signed partial sums v (AS, C, n), per (array-slice,
    chunk), in ps units^2: the rounding and clipping error E[(clip(round(u)) - u)^2] step^2 (zero for
    integer sums at step 1, small for sparse chunks: the dead zone that step^2/12 misses), and what read
    noise adds by Monte Carlo, (E[(clip(round(u + n)) - u)^2] - E[(clip(round(u)) - u)^2]) step^2."""
    lo = -plan.qmax if plan.adc_signed else 0
    u = v.double() / step
    q0 = torch.round(u).clamp_(lo, plan.qmax)
    e0 = (q0 - u).square().mean(-1)
    var = torch.zeros_like(e0)
    if reads is not None and reads.noisy:
        g = torch.Generator().manual_seed(int(seed) % (2**62))
        sig = ((reads.noise_rel * v.double()) ** 2 + reads.noise_floor**2).sqrt() / step
        q1 = torch.round(u + sig * torch.randn(u.shape, generator=g, dtype=u.dtype)).clamp_(lo, plan.qmax)
        var = ((q1 - u).square().mean(-1) - e0).clamp_min(0.0) * step**2
    return e0 * step**2, var


def code_shift(v: torch.Tensor, step: float, plan, reads, t: int) -> torch.Tensor:
    """Mean code change (AS, C, O) of tile t's conversions by each column's ADC offset and INL, on its
    calibration partial sums v (AS, C, n): E[clip(round(u + off + inl bow(u))) - clip(round(u))]."""
    lo = -plan.qmax if plan.adc_signed else 0
    u = (v.double() / step).unsqueeze(2)  # (AS, C, 1, n)
    AS = u.shape[0]
    d = torch.zeros_like(u)
    if reads.adc_offset is not None:
        d = d + reads.adc_offset[t].cpu().reshape(AS, 1, -1, 1)
    if reads.adc_inl is not None:
        d = d + reads.adc_inl[t].cpu().reshape(AS, 1, -1, 1) * reads.bow(u.clone())
    q0 = torch.round(u).clamp_(lo, plan.qmax)
    return (torch.round(u + d).clamp_(lo, plan.qmax) - q0).mean(-1)
