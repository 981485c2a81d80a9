"""One weight matrix on its crossbars (a layer, or one group of a grouped conv): the chip's cell levels,
the tile operands, the ADC ranges per row tile and the exact and fast computations of (M, K) integer
inputs -> (M, O) integer-domain outputs."""

from __future__ import annotations

import torch
from torch import nn

from crossnas.analog import adc, effects, kernels
from crossnas.analog.plan import F32_EXACT, LayerPlan
from crossnas.hardware.config import HardwareConfig


class MatrixCore(nn.Module):
    def __init__(self, plan: LayerPlan, wq: torch.Tensor, hw: HardwareConfig, seed: int,
                 kernel: str | None = None):
        super().__init__()
        self.plan, self.hw, self.kernel_request = plan, hw, kernel
        self.register_buffer("wq", wq)
        self.register_buffer("fs_full", plan.fs_full(), persistent=False)
        self.register_buffer("fs_cal", torch.zeros(plan.T, dtype=torch.float64))
        self.register_buffer("chunk_w", plan.chunk_weights(), persistent=False)
        self.register_buffer("col_w", plan.col_weights(), persistent=False)
        self.cell_effects = effects.active_cell_effects(hw)
        self.read_effects = effects.active_read_effects(hw)
        self.device_effects = bool(self.cell_effects or self.read_effects)
        self.calibrated = hw.adc.range == "calibrated"
        self.register_buffer("_levels_ideal", plan.weight_levels(wq), persistent=False)  # (A, S, O, K)
        # calibrated fast-fidelity terms per tile: read-noise variance after the ADC (ps units^2), and the
        # gain from an ADC offset / INL amplitude (LSB) to the mean change of the codes
        for k in ("read_var", "offset_gain", "inl_gain"):
            self.register_buffer(k, torch.zeros(plan.T, dtype=torch.float64), persistent=False)
        self.recorder: adc.RangeRecorder | None = None
        self.set_chip(seed)

    # ---- chip
    def set_chip(self, seed: int) -> None:
        """Draw this chip's cell effects and read-effect state (frozen until the next call)."""
        p = self.plan
        self.layer_seed, self.batch = int(seed), 0
        lv = self._levels_ideal
        if self.cell_effects:
            lv = effects.perturb_levels(lv, self.hw, p.cell, seed, self.cell_effects)
        self.register_buffer("levels", lv, persistent=False)  # after the cell effects
        for e in self.read_effects:
            lv = e.levels(lv, p, self.hw)
        self.reads = effects.chip_reads(p, self.hw, seed, self.read_effects) if self.read_effects else None
        if self.reads is not None:
            self.reads.to(lv.device)
        sgn, sw = p.array_signs().to(lv.device), p.slice_weights().to(lv.device)
        w_eff = torch.einsum("asok,a,s->ok", lv, sgn, sw)
        # fast fidelity: one float32 matmul with the effective weights, the offset folded in
        off = 2.0 ** (p.wbits - 1) if p.scheme == "offset" else 0.0
        self.register_buffer("w_fast", (w_eff - off).float(), persistent=False)
        # crossbar columns (AC*S*O, K) in (array, slice, column) order; with analog subtraction one column
        # carries the difference of the pair's levels (one signed conversion)
        lvt = lv[:1] - lv[1:] if p.adc_signed else lv
        cols = lvt.reshape(-1, p.K)
        self.kernel = kernels.resolve_kernel(self.kernel_request, lv.device)
        wdt = kernels.tile_dtype(p, float(lvt.abs().max()) if lvt.numel() else 0.0, self.device_effects,
                                 self.kernel)
        self.tiles = [cols[:, a0:a1].to(wdt).contiguous() for a0, a1 in p.bounds]

    def _apply(self, fn, recurse=True):  # keep the plain tensor lists on the module's device
        out = super()._apply(fn, recurse)
        self.tiles = [fn(t) for t in self.tiles]
        if self.reads is not None:
            self.reads.to(self.fs_full.device)
        return out

    def next_batch(self, device) -> None:
        """Read noise of this forward: seeded per (chip seed, layer, batch index since set_chip)."""
        if self.reads is not None and self.reads.noisy:
            g = torch.Generator(device=device)
            g.manual_seed(effects.read_seed(self.layer_seed, self.batch))
            self.reads.gen = g
        self.batch += 1

    # ---- ADC
    def step(self) -> torch.Tensor:
        return adc.adc_step(self.fs_full, self.fs_cal, self.plan.qmax, self.calibrated)

    @property
    def lossless(self) -> bool:
        return self.plan.lossless and not self.device_effects

    # ---- exact
    def run(self, blocks, M: int, xsum: torch.Tensor | None, calibrate: bool = False) -> torch.Tensor | None:
        if calibrate and self.recorder is None:
            self.recorder = adc.RangeRecorder(self.plan.T)
        return kernels.run_blocks(self.plan, self.tiles, self.step(), blocks, M, xsum,
                                  effects=self.device_effects, reads=self.reads,
                                  record=self.recorder if calibrate else None)

    def finish_calibration(self, percentile: float, layer_range: float | None = None) -> None:
        """Per-tile range = the `percentile` of that tile's |partial sums| (or `layer_range` for all tiles),
        then the fast-fidelity statistics of each tile with that range."""
        rec, self.recorder = self.recorder, None
        if rec is None or rec.empty:
            return
        for t in range(self.plan.T):
            if self.calibrated:
                own = adc.percentile_range(rec.tile(t), percentile)
                self.fs_cal[t] = layer_range if layer_range is not None else own
        if self.reads is not None:
            step = self.step()
            for t in range(self.plan.T):
                terms = adc.read_terms(rec.tile(t).double(), float(step[t]), self.reads, seed=self.layer_seed)
                self.read_var[t], self.offset_gain[t], self.inl_gain[t] = terms

    # ---- fast
    def fast_error(self, y: torch.Tensor, lossless: bool) -> torch.Tensor:
        """fast fidelity: each conversion's error as Gaussian noise (ADC rounding step^2/12, read noise as
        calibrated through the ADC) plus the per-column bias of the ADC offsets and INL, scaled by their
        calibrated gains (a sub-LSB offset on integer partial sums changes no code). IR drop and the cell
        effects are exact already (in the effective weights). y: (N, O, ...), outputs on dim 1."""
        if lossless:
            return y
        step = self.step()
        p = self.plan
        var = adc.rounding_variance(step, self.chunk_w, self.col_w, analog_sums=False)
        bias = None
        r = self.reads
        if r is not None:
            if r.noisy:
                var = var + (self.chunk_w**2).sum() * (self.col_w**2).sum() * self.read_var.sum()
            shift = torch.zeros(p.T, p.AC * p.S * p.O, dtype=torch.float64, device=step.device)
            if r.adc_offset is not None:
                shift = shift + r.adc_offset * self.offset_gain.reshape(-1, 1)
            if r.adc_inl is not None:
                shift = shift + r.adc_inl * self.inl_gain.reshape(-1, 1)
            per = (shift * step.reshape(-1, 1)).reshape(p.T, p.AC * p.S, p.O)
            bias = (per * self.col_w.reshape(1, -1, 1)).sum((0, 1)) * self.chunk_w.sum()  # (O,)
        if float(var) <= 0 and bias is None:
            return y
        g = torch.Generator(device=y.device)
        g.manual_seed(effects.read_seed(self.layer_seed * 7919 + 1, self.batch))
        self.batch += 1
        if float(var) > 0:
            y = y.add_(torch.randn(y.shape, generator=g, dtype=y.dtype, device=y.device) * float(var.sqrt()))
        if bias is not None:
            y = y.add_(bias.to(y.dtype).reshape(-1, *[1] * (y.dim() - 2)))
        return y

    # ---- digital
    @property
    def digital_f32(self) -> bool:
        amax = 2 ** (self.plan.abits - 1) if self.plan.act_signed else 2**self.plan.abits - 1
        return amax * float(self.wq.abs().sum(1).max()) < F32_EXACT
