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
        # calibrated fast-fidelity terms per (tile, converted array-slice, chunk): the conversion error
        # variance of rounding and clipping, and the one read noise adds (ps units^2)
        for k in ("round_var", "read_var"):  # (T, AC*S, C)
            self.register_buffer(k, torch.zeros(plan.T, plan.AC * plan.S, plan.C, dtype=torch.float64),
                                 persistent=False)
        self.cal_groups: list[torch.Tensor] = []  # per tile (AC*S, C, n) calibration partial sums
        self.adc_shift: torch.Tensor | None = None  # (T, AC*S, C, O) mean code change by ADC offset + INL
        self.recorder: adc.RangeRecorder | None = None
        self.fast_terms = True  # the layer turns this off for exact fidelity (no per-chip ADC shift)
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
            if getattr(self, "cal_groups", None):
                self._update_adc_shift()
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
            p = self.plan
            self.recorder = adc.RangeRecorder(p.T, (p.AC * p.S, p.C) if self.reads is not None else None)
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
        if self.reads is None:  # the fast fidelity's measured terms are for the read effects only
            return
        step = self.step()
        self.cal_groups = [rec.tile_groups(t) for t in range(self.plan.T)]
        if not all(v.numel() for v in self.cal_groups):
            self.cal_groups = []
            return
        for t, v in enumerate(self.cal_groups):
            terms = adc.conversion_terms(v, float(step[t]), self.plan, self.reads, seed=self.layer_seed)
            self.round_var[t], self.read_var[t] = terms
        self.cal_groups = [v[..., : adc.SHIFT_SAMPLES].contiguous() for v in self.cal_groups]
        self._update_adc_shift()

    def _update_adc_shift(self) -> None:
        """This chip's mean code change of every (tile, array-slice, chunk, column) by its ADC's offset and
        INL, on the calibration partial sums (exact through the rounding: a sub-LSB offset on integer sums
        changes no code)."""
        r = self.reads
        self.adc_shift = None
        if (r is None or not self.cal_groups or not self.fast_terms
                or (r.adc_offset is None and r.adc_inl is None)):
            return
        step = self.step()
        self.adc_shift = torch.stack([adc.code_shift(v, float(step[t]), self.plan, r, t)
                                      for t, v in enumerate(self.cal_groups)]).to(step.device)

    # ---- fast
    def fast_error(self, y: torch.Tensor, lossless: bool) -> torch.Tensor:
        """fast fidelity: each conversion's error as Gaussian noise (with read effects: rounding, clipping
        and read noise as measured on the calibration sums; else step^2/12) plus the per-column bias of
        this chip's ADC offsets and INL. IR drop and the cell effects are exact already
        (in the effective weights). y: (N, O, ...), outputs on dim 1."""
        if lossless:
            return y
        step = self.step()
        cw, colw = self.chunk_w, self.col_w
        if self.cal_groups:
            # read effects dither the sums: the measured error variance per conversion, weighted by its
            # shift-and-add coefficient squared (rounding and clipping, plus read noise through the ADC)
            var = torch.einsum("tac,a,c->", self.round_var + self.read_var, colw**2, cw**2)
        else:  # integer sums: the dead-zone error is systematic, not noise; the uniform rule ranks better
            var = adc.rounding_variance(step, cw, colw)
        bias = None
        if self.adc_shift is not None:  # codes x step x shift-and-add weights, summed per column
            bias = torch.einsum("taco,t,a,c->o", self.adc_shift, step, colw, cw)
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
