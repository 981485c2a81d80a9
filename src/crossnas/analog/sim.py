"""Analog PIM inference simulator: conv/linear layers computed as the mapped crossbars would.

See docs/analog.md for the model. Mapping (slices, input chunks, row tiles) comes from
crossnas.cost.mapping_rules, the same rules the cost model uses.
"""

from __future__ import annotations

import copy
import math
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.batchnorm import _NormBase

from crossnas.cost.mapping_rules import input_chunks, row_tile_bounds, rows_per_tile, weight_slices
from crossnas.errors import CrossnasError
from crossnas.hardware.config import HardwareConfig
from crossnas.quant import quantize_int, weight_range

PCM_T0_S = 20.0  # Nandakumar et al. 2019 / aihwkit PCMLikeNoiseModel
PCM_GMAX_US = 25.0
_F32_EXACT = 2**24  # integers below this add exactly in float32
_CAL_ROWS = 4096  # output rows per layer and calibration batch whose partial sums are recorded
_CAL_SAMPLES = 200_000  # partial sums kept per recorded tensor (a fixed random subset)
_PS_BLOCK = 2**18  # partial sums per row tile per memory block (1 MiB of float32: stays in L2)


@contextmanager
def _exact_float():
    """float32 matmuls/convs without TF32 on CUDA (sums of small integers must stay exact)."""
    if not torch.cuda.is_available():
        yield
        return
    old = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old


# ------------------------------------------------------------------------------------------------ BN fold
def _fold_pair(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> None:
    with torch.no_grad():
        std = torch.sqrt(bn.running_var + bn.eps)
        gamma = bn.weight if bn.affine else torch.ones_like(std)
        beta = bn.bias if bn.affine else torch.zeros_like(std)
        f = gamma / std
        conv.weight.mul_(f.reshape(-1, 1, 1, 1).to(conv.weight.dtype))
        b0 = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
        nb = beta + (b0 - bn.running_mean) * f
        if conv.bias is None:
            conv.bias = nn.Parameter(nb.to(conv.weight.dtype))
        else:
            conv.bias.copy_(nb)


def _fx_pairs(model: nn.Module) -> list[tuple[str, str]] | None:
    try:
        gm = torch.fx.symbolic_trace(model)
    except Exception:  # noqa: BLE001 - untraceable models fall back to the module walk
        return None
    mods = dict(model.named_modules())
    pairs = []
    for node in gm.graph.nodes:
        if node.op == "call_module" and isinstance(mods.get(node.target), nn.BatchNorm2d):
            src = node.args[0] if node.args else None
            if (isinstance(src, torch.fx.Node) and src.op == "call_module"
                    and isinstance(mods.get(src.target), nn.Conv2d) and len(src.users) == 1):
                pairs.append((src.target, node.target))
    return pairs


def _walk_pairs(model: nn.Module) -> list[tuple[str, str]]:
    pairs = []
    for pname, parent in model.named_modules():
        pre = f"{pname}." if pname else ""
        kids = list(parent.named_children())
        used = set()
        for (n1, m1), (n2, m2) in zip(kids, kids[1:]):
            if isinstance(m1, nn.Conv2d) and isinstance(m2, nn.BatchNorm2d):
                pairs.append((pre + n1, pre + n2))
                used.add(n2)
        names = dict(kids)
        for n, m in kids:  # conv1 -> bn1 style names, registered out of order
            if isinstance(m, nn.Conv2d) and n.startswith("conv"):
                bn = "bn" + n[4:]
                if bn not in used and isinstance(names.get(bn), nn.BatchNorm2d):
                    pairs.append((pre + n, pre + bn))
                    used.add(bn)
    return pairs


# modules with parameters that are digital periphery on a PIM chip (not matrix-vector products)
_DIGITAL_OK = (_NormBase, nn.LayerNorm, nn.GroupNorm, nn.LocalResponseNorm, nn.PReLU)


def unmappable_layers(model: nn.Module) -> list[tuple[str, str]]:
    """(name, reason) of every module the simulator cannot put on crossbars: a Conv2d with groups or
    non-zero/string padding, and any other module owning weights that is not a Conv2d, a Linear or a
    normalisation (Conv1d/3d, ConvTranspose, RNNs, attention, embeddings, bilinear, ...)."""
    out: list[tuple[str, str]] = []
    for n, mod in model.named_modules():
        if any(n.startswith(b + ".") for b, _ in out):
            continue  # inside a module already listed
        if isinstance(mod, nn.Conv2d):
            if mod.groups != 1:
                out.append((n, f"grouped convolution, groups={mod.groups}"))
            elif isinstance(mod.padding, str):
                out.append((n, f"Conv2d padding={mod.padding!r} (only numeric padding is mapped)"))
            elif mod.padding_mode != "zeros":
                out.append((n, f"Conv2d padding_mode={mod.padding_mode!r} (only zeros is mapped)"))
        elif isinstance(mod, nn.Linear) or isinstance(mod, _DIGITAL_OK):
            continue
        elif any(True for _ in mod.parameters(recurse=False)):
            why = "owns parameters used outside" if n == "" else "is not"
            out.append((n or "(model)", f"{type(mod).__name__} {why} a Conv2d or Linear layer"))
    return out


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """Fold every BatchNorm2d that directly follows a Conv2d into it (in place); the BN becomes Identity.

    Pairs are found by torch.fx tracing (BN whose input is a conv output used only by it); untraceable
    models fall back to consecutive children of one parent (Sequential, shortcut.0 -> shortcut.1) and
    convN -> bnN names.
    """
    pairs = _fx_pairs(model)
    if pairs is None:
        pairs = _walk_pairs(model)
    for conv_name, bn_name in pairs:
        _fold_pair(model.get_submodule(conv_name), model.get_submodule(bn_name))
        parent_name, _, child = bn_name.rpartition(".")
        setattr(model.get_submodule(parent_name) if parent_name else model, child, nn.Identity())
    return model


# ------------------------------------------------------------------------------------------------ layer core
@dataclass
class LayerPlan:
    name: str
    wbits: int
    abits: int
    act_signed: bool
    cell: int
    dac: int
    adc_bits: int
    scheme: str
    subtract: str
    rows: int
    bounds: list = field(default_factory=list)


def _validate(name: str, hw: HardwareConfig, wb: int, ab: int, adc_bits: int) -> None:
    """Impossible settings for layer `name`: CrossnasError naming the layer, the setting and why."""
    d = hw.device
    checks = [(hw.dac.bits < 1, f"dac.bits={hw.dac.bits}: a DAC needs at least 1 bit"),
              (adc_bits < 1, f"adc.bits={adc_bits}: an ADC needs at least 1 bit"),
              (d.bits_per_cell < 1, f"device.bits_per_cell={d.bits_per_cell}: a cell stores at least 1 bit"),
              (d.bits_per_cell > wb, f"device.bits_per_cell={d.bits_per_cell} is larger than this layer's "
                                     f"weight bits ({wb})"),
              (d.variation < 0, f"device.variation={d.variation}: a relative sigma cannot be negative"),
              (wb < 2, f"weight bits={wb}: signed weights need at least 2 bits"),
              (ab < 1, f"activation bits={ab}: need at least 1 bit"),
              (hw.crossbar.rows < 1, f"crossbar.rows={hw.crossbar.rows}: need at least 1 row"),
              (not 0 <= d.stuck_off_rate <= 1, f"device.stuck_off_rate={d.stuck_off_rate}: not in [0, 1]"),
              (not 0 <= d.stuck_on_rate <= 1, f"device.stuck_on_rate={d.stuck_on_rate}: not in [0, 1]"),
              (d.stuck_off_rate + d.stuck_on_rate > 1,
               f"device.stuck_off_rate + stuck_on_rate = {d.stuck_off_rate + d.stuck_on_rate} exceeds 1")]
    for bad, why in checks:
        if bad:
            raise CrossnasError(f"{name}: {why}")


def _has_device_effects(hw: HardwareConfig) -> bool:
    d = hw.device
    return bool(d.variation > 0 or d.stuck_off_rate > 0 or d.stuck_on_rate > 0 or d.pcm_noise
                or d.drift_time_s is not None)


class _PIMBase(nn.Module):
    """Shared state of a PIM layer: quantized weights, cell levels per chip, ADC ranges, mode."""

    def _setup(self, layer: nn.Module, name: str, hw: HardwareConfig, wb: int, ab: int, signed: bool,
               act_range: float, kernel_area: int, seed: int, fidelity: str):
        self.layer, self.name, self.hw, self.fidelity = layer, name, hw, fidelity
        adc_bits = hw.adc_bits_for(name)
        _validate(name, hw, wb, ab, adc_bits)
        if signed and ab < 2:
            raise CrossnasError(f"{name}: act_bits: signed activations need >= 2 bits, got {ab}")
        w = layer.weight.detach().double().reshape(layer.weight.shape[0], -1)
        wq, ws = quantize_int(w, wb, weight_range(w), True)
        self.register_buffer("wq", wq)
        self.register_buffer("w_scale", ws.reshape(()))
        self.register_buffer("act_range", torch.tensor(float(act_range), dtype=torch.float64))
        K = wq.shape[1]
        rpt = int(rows_per_tile(hw.crossbar.rows, kernel_area, hw.crossbar.row_packing, layer=name))
        self.plan = LayerPlan(name, wb, ab, signed, hw.device.bits_per_cell, hw.dac.bits, adc_bits,
                              hw.crossbar.signed, hw.crossbar.differential_subtract, rpt,
                              row_tile_bounds(K, rpt))
        p = self.plan
        self.S = int(weight_slices(wb, p.cell, p.scheme))
        self.C = int(input_chunks(ab, p.dac, signed))
        self.T = len(p.bounds)
        self.A = 2 if p.scheme == "differential" else 1
        self.AC = 1 if self._adc_signed() else self.A  # converted arrays per (slice, column)
        self.K = K
        # full-scale partial sum per tile (rows actually used in the tile)
        tile_rows = torch.tensor([b - a for a, b in p.bounds], dtype=torch.float64)
        self.register_buffer("fs_full", tile_rows * (2**p.dac - 1) * (2**p.cell - 1))
        self.register_buffer("fs_cal", torch.zeros((), dtype=torch.float64))
        self.register_buffer("chunk_w", self._chunk_weights(), persistent=False)
        amax = 2 ** (ab - 1) if signed else 2**ab - 1
        self._amax = amax
        self._digital_f32 = amax * float(wq.abs().sum(1).max()) < _F32_EXACT  # digital sums exact in f32
        self.mode = "analog"  # analog | digital | calibrate
        self.force_sliced = False
        self._cal_samples: list[torch.Tensor] = []
        self.device_effects = _has_device_effects(hw)
        self.register_buffer("_levels_ideal", self._weight_levels(), persistent=False)  # (A, S, O, K) ints
        self.set_chip(seed)

    # ---- weights -> cells
    def _weight_levels(self) -> torch.Tensor:
        p, q = self.plan, self.wq
        if p.scheme == "differential":
            mags = torch.stack([q.clamp_min(0), (-q).clamp_min(0)])
        else:
            mags = (q + 2 ** (p.wbits - 1)).unsqueeze(0)
        mags = mags.to(torch.int64)
        sh = torch.arange(self.S, device=q.device) * p.cell
        lv = (mags.unsqueeze(1) >> sh.reshape(1, -1, 1, 1)) & (2**p.cell - 1)
        return lv.double()

    def set_chip(self, seed: int) -> None:
        """Draw this chip's per-cell device effects (frozen until the next call)."""
        lv = self._levels_ideal
        if self.device_effects:
            lv = _perturb_levels(lv, self.hw, self.plan.cell, seed)
        self.register_buffer("levels", lv, persistent=False)
        p = self.plan
        sgn = torch.tensor([1.0, -1.0] if self.A == 2 else [1.0], dtype=torch.float64, device=lv.device)
        sw = (2.0 ** (torch.arange(self.S, device=lv.device) * p.cell)).double()
        w_eff = torch.einsum("asok,a,s->ok", lv, sgn, sw)
        self.register_buffer("w_eff", w_eff, persistent=False)
        # fast fidelity: one float32 matmul with the effective weights, the offset folded in
        off = 2.0 ** (p.wbits - 1) if p.scheme == "offset" else 0.0
        self.register_buffer("w_fast", (w_eff - off).float(), persistent=False)
        # crossbar columns (AC*S*O, K) in (array, slice, column) order; with analog subtraction one
        # column carries the difference of the pair's levels (one signed conversion). Ideal cells hold
        # small integers: int8 for the int8 GEMM on CPU
        lvt = lv[:1] - lv[1:] if self._adc_signed() else lv
        cols = lvt.reshape(-1, self.K)  # (AC*S*O, K): one crossbar column per row
        ideal = not self.device_effects
        if ideal and float(lvt.abs().max()) <= 127 and 2**p.dac - 1 <= 127:
            wdt = torch.int8
        elif ideal and float(self.fs_full.max()) >= _F32_EXACT:
            wdt = torch.float64
        else:
            wdt = torch.float32
        for t, (a0, a1) in enumerate(p.bounds):  # (cols, rows of tile t), contiguous per row tile
            self.register_buffer(f"w_tile{t}", cols[:, a0:a1].to(wdt).contiguous(), persistent=False)
        # shift-and-add weight of each converted (array, slice)
        self.register_buffer("col_w", (sgn[: self.AC].reshape(-1, 1) * sw.reshape(1, -1)).reshape(-1),
                             persistent=False)
        self.register_buffer("sgn", sgn, persistent=False)
        self.register_buffer("sw", sw, persistent=False)

    @property
    def w_tiles(self) -> list[torch.Tensor]:
        return [getattr(self, f"w_tile{t}") for t in range(self.T)]

    # ---- inputs
    def quant_input(self, x: torch.Tensor) -> torch.Tensor:
        """Integer codes (in x's floating dtype) of the layer input."""
        dt = x.dtype if x.dtype in (torch.float32, torch.float64) else torch.float32
        q, _ = quantize_int(x.to(dt), self.plan.abits, self.act_range.to(dt), self.plan.act_signed)
        return q

    @property
    def a_scale(self) -> torch.Tensor:
        p = self.plan
        m = 2 ** (p.abits - 1) - 1 if p.act_signed else 2**p.abits - 1
        return self.act_range.clamp_min(1e-12) / m

    def _chunk_weights(self) -> torch.Tensor:
        """Shift-and-add weight of each DAC chunk (C,): 2^(dac*c); a signed input's sign chunk -2^(ab-1)."""
        p = self.plan
        n_mag = self.C - 1 if p.act_signed else self.C
        cw = [2.0 ** (p.dac * c) for c in range(n_mag)]
        if p.act_signed:
            cw.append(-(2.0 ** (p.abits - 1)))
        return torch.tensor(cw, dtype=torch.float64)

    def _planes(self, xq: torch.Tensor) -> torch.Tensor:
        """Integer inputs (any shape) -> (*shape, C) uint8 DAC chunk values in 0..2^dac-1.

        Unsigned: chunk c = bits [dac*c, dac*(c+1)). Signed: the low ab-1 bits of the two's complement
        code in ceil((ab-1)/dac) chunks, then a 0/1 sign chunk (weight -2^(ab-1))."""
        p = self.plan
        if p.abits <= 8:
            xi = xq.to(torch.int8 if p.act_signed else torch.uint8)  # exact: codes fit in 8 bits
        else:
            xi = xq.to(torch.int32)
        n_mag = self.C - 1 if p.act_signed else self.C
        low = xi & (2 ** (p.abits - 1) - 1) if p.act_signed else xi
        sh = torch.arange(n_mag, device=xq.device, dtype=xi.dtype) * p.dac
        planes = ((low.unsqueeze(-1) >> sh) & (2**p.dac - 1)).to(torch.uint8)
        if p.act_signed:
            planes = torch.cat([planes, (xi < 0).unsqueeze(-1).to(torch.uint8)], -1)
        return planes

    def _chunks(self, xq: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(M, K) ints -> (M, K, C) DAC chunks and chunk weights (C,) (for inspection and tests)."""
        return self._planes(xq).double(), self.chunk_w

    # ---- ADC
    def _adc_lossless(self) -> bool:
        """The ADC resolves every integer partial sum (any range policy: step clamps at one unit)."""
        p = self.plan
        qm = 2 ** (p.adc_bits - 1) - 1 if self._adc_signed() else 2**p.adc_bits - 1
        return bool(qm >= self.fs_full.max().item())

    def _adc_signed(self) -> bool:
        return self.plan.scheme == "differential" and self.plan.subtract == "analog"

    def _adc_step(self) -> tuple[torch.Tensor, int]:
        """Per-tile ADC step (T,) and the largest code; the step never goes below one unit partial sum."""
        p = self.plan
        qm = max(2 ** (p.adc_bits - 1) - 1, 1) if self._adc_signed() else 2**p.adc_bits - 1
        fs = self.fs_full
        if self.hw.adc.range == "calibrated" and self.fs_cal.item() > 0:
            fs = torch.minimum(fs, self.fs_cal.expand_as(fs))
        return (fs / qm).clamp_min(1.0), qm

    def _adc_dtype(self) -> torch.dtype:
        """float32 ADC arithmetic when every ideal partial sum is an integer below 2^24 (exact in float32);
        with device effects the partial sums are float32 anyway."""
        if self.device_effects or float(self.fs_full.max()) < _F32_EXACT:
            return torch.float32
        return torch.float64

    def _sum_dtype(self, qm: int) -> torch.dtype:
        """float32 shift-and-add when every partial result is an integer below 2^24, else float64."""
        bound = qm * float(self.chunk_w.abs().sum()) * float(self.col_w.abs().sum())
        return torch.float32 if bound < _F32_EXACT else torch.float64

    # ---- core: (M, K) integer inputs -> (M, O) integer-domain outputs
    def _route(self) -> str:
        if self.mode in ("digital", "calibrate"):
            return self.mode
        lossless = self._adc_lossless() and not self.device_effects
        if self.fidelity == "exact":
            return "digital" if lossless and not self.force_sliced else "sliced"
        return "fast_lossless" if lossless else "fast"

    def _int_matmul(self, xq: torch.Tensor) -> torch.Tensor:
        route = self._route()
        if route == "digital":
            return self._exact_int(xq)
        if route.startswith("fast"):
            with _exact_float():
                return self._fast_noise(xq.float() @ self.w_fast.t(), route == "fast_lossless")
        M = xq.shape[0]
        planes = self._planes(xq).permute(1, 0, 2)  # (K, M, C)
        mb = self._block_rows()
        blocks = ((m0, min(M, m0 + mb), planes[:, m0:m0 + mb].reshape(self.K, -1))
                  for m0 in range(0, M, mb))
        xsum = xq.double().sum(1) if self.plan.scheme == "offset" else None
        out = self._run_blocks(blocks, M, xsum)
        return self._exact_int(xq) if route == "calibrate" else out.t()

    def _block_rows(self) -> int:
        """Output rows per memory block: one row tile's partial sums of a block fit in _PS_BLOCK."""
        return max(1, _PS_BLOCK // (self.C * self.AC * self.S * self.wq.shape[0]))

    def _exact_int(self, xq: torch.Tensor) -> torch.Tensor:
        """Integer matmul; float32 when every partial sum is provably below 2^24 (exact), else float64."""
        if self._digital_f32:
            with _exact_float():
                return xq.float() @ self._wq32.t()
        return xq.double() @ self.wq.t()

    @property
    def _wq32(self) -> torch.Tensor:
        if getattr(self, "_wq32_cache", None) is None or self._wq32_cache.device != self.wq.device:
            self._wq32_cache = self.wq.float()
        return self._wq32_cache

    @staticmethod
    def _gemm(w: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        """Partial sums of one row tile: (cols, R) cell levels x (R, positions*chunks) chunk values.

        Ideal cells on CPU: int8 x int8 -> int32 (exact, ~5x float32 throughput); otherwise float32
        (exact for integers below 2^24; TF32 off) or float64."""
        if w.dtype == torch.int8:
            if a.is_cpu:
                return torch._int_mm(w, a.view(torch.int8))
            w = w.float()
        if a.is_cpu:
            return w @ a.to(w.dtype)
        with _exact_float():
            return w @ a.to(w.dtype)

    def _run_blocks(self, blocks, M: int, xsum: torch.Tensor | None) -> torch.Tensor:
        """Bit-sliced crossbar computation over memory blocks of output rows -> (O, M) float64.

        Each block is (r0, r1, x) with x (K, (r1-r0)*C) DAC chunk values (chunk fastest). Per row tile
        one GEMM gives the partial sums of every (array, slice, column) x (output row, chunk); the ADC
        (scale, round, clip) and the shift-and-add over chunks, then over arrays and slices, are
        whole-tensor ops on that block. No loop over bits or slices; the tile loop has ceil(K/rows)
        iterations, each one GEMM for all chunks, slices, arrays and columns."""
        C, O, AS = self.C, self.wq.shape[0], self.AC * self.S
        calibrate = self.mode == "calibrate"
        step, qm = self._adc_step()
        lo = -qm if self._adc_signed() else 0
        adt, sdt = self._adc_dtype(), self._sum_dtype(qm)
        st = step.to(adt)
        cw = self.chunk_w.to(sdt)
        colw = self.col_w.to(sdt)
        off = 2.0 ** (self.plan.wbits - 1)
        out = torch.empty(O, M, dtype=torch.float64, device=self.wq.device)
        wts = self.w_tiles
        for r0, r1, x in blocks:  # memory blocking over output rows only
            if calibrate and r0 >= _CAL_ROWS:
                break  # the first _CAL_ROWS output rows of a batch give enough partial-sum samples
            mb = r1 - r0
            if wts[0].dtype != torch.int8 or not x.is_cpu:
                x = x.to(torch.float32 if wts[0].dtype == torch.int8 else wts[0].dtype)
            y = None
            for t, (a0, a1) in enumerate(self.plan.bounds):
                ps = self._gemm(wts[t], x[a0:a1])  # (AC*S*O, mb*C)
                if calibrate:
                    self._record(ps)
                    continue
                if ps.dtype == adt:
                    codes = ps.div_(st[t])
                elif ps.is_floating_point() or adt != torch.float32:
                    codes = ps.to(adt).div_(st[t])
                else:  # int32 -> float32 in place (same element size)
                    codes = torch.div(ps, st[t], out=ps.view(torch.float32))
                codes = codes.round_().clamp_(lo, qm)
                if codes.dtype != sdt:
                    codes = codes.to(sdt)
                r = colw @ codes.view(AS, -1)  # shift-and-add over arrays and slices -> (O*mb*C,)
                r = r.view(-1, C) @ cw  # then over chunks: integer ADC-code sums (O*mb,)
                yt = r.view(O, mb).double().mul_(step[t])
                y = yt if y is None else y.add_(yt)
            if calibrate:
                continue
            if xsum is not None:
                y = y.sub_(off * xsum[r0:r1].reshape(1, -1))
            out[:, r0:r1] = y
        return out

    def _fast_noise(self, y: torch.Tensor, lossless: bool) -> torch.Tensor:
        """fast fidelity: ADC error as additive gaussian noise of variance step^2/12 per conversion, summed
        over the conversions (chunks x slices x arrays x tiles) feeding each output."""
        if lossless:
            return y
        step, _ = self._adc_step()
        if bool((step <= 1.0).all()):
            return y
        coef2 = (self.chunk_w**2).sum() * (self.col_w**2).sum()
        var = (step**2 / 12.0 * (step > 1.0)).sum() * coef2
        g = torch.Generator(device=y.device)
        g.manual_seed(self._noise_seed)
        self._noise_seed += 1
        return y.add_(torch.randn(y.shape, generator=g, dtype=y.dtype, device=y.device) * float(var.sqrt()))

    def _record(self, ps: torch.Tensor) -> None:
        v = ps.reshape(-1)
        if v.numel() > _CAL_SAMPLES:
            v = v[_sample_index(v.numel()).to(v.device)]
        self._cal_samples.append(v.abs().float().cpu())

    def finish_calibration(self, percentile: float) -> None:
        """ADC range = the `percentile` (nearest rank) of the recorded |partial sums|, at least 1."""
        if self._cal_samples:
            v = torch.cat(self._cal_samples)[:2_000_000]
            k = min(v.numel(), max(1, math.ceil(percentile / 100.0 * v.numel())))
            self.fs_cal.fill_(max(float(torch.kthvalue(v, k).values), 1.0))
        self._cal_samples = []

    def _finish(self, yint: torch.Tensor, dtype: torch.dtype, bias_shape=(-1,)) -> torch.Tensor:
        """Output rescale (weight scale x activation scale) plus bias, in the input's dtype."""
        dt = torch.float64 if dtype == torch.float64 else torch.float32
        y = yint.to(dt) * (self.w_scale * self.a_scale).to(dt)
        if self.layer.bias is not None:
            y = y + self.layer.bias.detach().to(dt).reshape(bias_shape)
        return y.to(dtype)


_SAMPLE_INDEX: dict[int, torch.Tensor] = {}


def _sample_index(n: int) -> torch.Tensor:
    """_CAL_SAMPLES fixed pseudo-random positions out of n (cached: calibration records many tensors)."""
    if n not in _SAMPLE_INDEX:
        if len(_SAMPLE_INDEX) > 64:
            _SAMPLE_INDEX.clear()
        g = torch.Generator().manual_seed(0)
        _SAMPLE_INDEX[n] = torch.randint(n, (_CAL_SAMPLES,), generator=g)
    return _SAMPLE_INDEX[n]


def _perturb_levels(lv: torch.Tensor, hw: HardwareConfig, cell: int, seed: int) -> torch.Tensor:
    """Per-cell device effects in level units. Conductance g/gmax = gmin + level/L (1 - gmin); the reference
    column removes gmin * sum(inputs) exactly, so the effective level is (g - gmin) / (1 - gmin) * L."""
    d = hw.device
    L = 2**cell - 1
    gmin = 0.0 if d.r_off_ohm is None else d.r_on_ohm / d.r_off_ohm
    g = gmin + lv / L * (1 - gmin)
    gen = torch.Generator(device="cpu")
    gen.manual_seed(int(seed))
    shape = lv.shape

    def randn():
        return torch.randn(shape, generator=gen, dtype=torch.float64).to(lv.device)

    if d.pcm_noise:
        sig = (0.26348 + 1.9650 * g - 1.1731 * g**2) / PCM_GMAX_US
        g = (g + sig * randn()).clamp_min(0.0)
    elif d.variation > 0:
        z = randn()
        g = g * (1 + d.variation * z) if d.variation_model == "gaussian" else g * torch.exp(d.variation * z)
        g = g.clamp_min(0.0)
    if d.drift_time_s is not None:
        gr = g.clamp_min(1e-6)
        mu = (-0.0155 * torch.log(gr) + 0.0244).clamp(0.049, 0.1)
        sd = (-0.0125 * torch.log(gr) - 0.0059).clamp(0.008, 0.045)
        nu = mu + sd * randn()
        g = g * (max(d.drift_time_s, PCM_T0_S) / PCM_T0_S) ** (-nu)
    if d.stuck_off_rate > 0 or d.stuck_on_rate > 0:
        u = torch.rand(shape, generator=gen, dtype=torch.float64).to(lv.device)
        g = torch.where(u < d.stuck_off_rate, torch.full_like(g, gmin), g)
        on = (u >= d.stuck_off_rate) & (u < d.stuck_off_rate + d.stuck_on_rate)
        g = torch.where(on, torch.ones_like(g), g)
    return (g - gmin) / (1 - gmin) * L


class PIMLinear(_PIMBase):
    """Wraps an nn.Linear (or QuantLinear); computes it on simulated crossbars."""

    def __init__(self, layer: nn.Linear, name: str, hw: HardwareConfig, wb: int, ab: int, signed: bool,
                 act_range: float, seed: int = 0, fidelity: str = "exact"):
        super().__init__()
        self._noise_seed = seed * 7919 + 1
        self._setup(layer, name, hw, wb, ab, signed, act_range, 1, seed, fidelity)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shp = x.shape
        xq = self.quant_input(x.reshape(-1, shp[-1]))
        y = self._finish(self._int_matmul(xq), x.dtype)
        return y.reshape(*shp[:-1], -1)


class PIMConv2d(_PIMBase):
    """Wraps an nn.Conv2d (or QuantConv2d, groups=1); computes it on simulated crossbars via im2col."""

    def __init__(self, layer: nn.Conv2d, name: str, hw: HardwareConfig, wb: int, ab: int, signed: bool,
                 act_range: float, seed: int = 0, fidelity: str = "exact"):
        super().__init__()
        if layer.groups != 1:
            raise CrossnasError(f"{name}: grouped convolution (groups={layer.groups}) cannot be mapped")
        if isinstance(layer.padding, str) or layer.padding_mode != "zeros":
            raise CrossnasError(f"{name}: only numeric zero padding can be mapped")
        self._noise_seed = seed * 7919 + 1
        kh, kw = layer.kernel_size
        self._setup(layer, name, hw, wb, ab, signed, act_range, kh * kw, seed, fidelity)

    def _conv(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        lay = self.layer
        if x.is_cpu:  # oneDNN direct convolution: exact for integers below 2^24
            return F.conv2d(x, w, None, lay.stride, lay.padding, lay.dilation)
        # CUDA: no TF32 and no cuDNN (its Winograd/FFT algorithms are not exact on integers)
        with _exact_float(), torch.backends.cudnn.flags(enabled=False):
            return F.conv2d(x, w, None, lay.stride, lay.padding, lay.dilation)

    def _conv_exact(self, xq: torch.Tensor) -> torch.Tensor:
        """Digital integer conv: one float32 conv when every sum is provably below 2^24, else float64."""
        shape = self.layer.weight.shape
        if self._digital_f32:
            return self._conv(xq.float(), self._wq32.reshape(shape))
        return self._conv(xq.double(), self.wq.reshape(shape))

    def _patch_blocks(self, xq: torch.Tensor):
        """DAC chunk planes of the input, im2col'd once per memory block: (r0, r1, (K, (r1-r0)*C)).

        K-major (rows in weight.reshape(O, -1) order), then output position, then chunk: the copy reads
        runs of Wo*C contiguous bytes, and every row tile is a contiguous row range."""
        lay = self.layer
        planes = self._planes(xq)  # (N, Cin, H, W, C) uint8
        ph, pw = lay.padding
        if ph or pw:
            planes = F.pad(planes, (0, 0, pw, pw, ph, ph))
        N, Cin, Hp, Wp, C = planes.shape
        (kh, kw), (sh, sw), (dh, dw) = lay.kernel_size, lay.stride, lay.dilation
        Ho, Wo = (Hp - dh * (kh - 1) - 1) // sh + 1, (Wp - dw * (kw - 1) - 1) // sw + 1
        s = planes.stride()
        pt = planes.as_strided((Cin, kh, kw, N, Ho, Wo, C),
                               (s[1], s[2] * dh, s[3] * dw, s[0], s[2] * sh, s[3] * sw, s[4]))
        K, L = Cin * kh * kw, Ho * Wo
        pos = self._block_rows()

        def gen():
            if pos >= L:
                nb = pos // L
                for n0 in range(0, N, nb):
                    n1 = min(N, n0 + nb)
                    yield n0 * L, n1 * L, pt[:, :, :, n0:n1].reshape(K, -1)
            else:
                hb = max(1, pos // Wo)
                for n in range(N):
                    for h0 in range(0, Ho, hb):
                        h1 = min(Ho, h0 + hb)
                        yield n * L + h0 * Wo, n * L + h1 * Wo, pt[:, :, :, n, h0:h1].reshape(K, -1)

        return gen(), (N, Ho, Wo)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xq = self.quant_input(x)
        route = self._route()
        if route == "digital":
            return self._finish(self._conv_exact(xq), x.dtype, (1, -1, 1, 1))
        if route.startswith("fast"):
            y = self._conv(xq.float(), self.w_fast.reshape(self.layer.weight.shape))
            return self._finish(self._fast_noise(y, route == "fast_lossless"), x.dtype, (1, -1, 1, 1))
        blocks, (N, Ho, Wo) = self._patch_blocks(xq)
        xsum = None
        if self.plan.scheme == "offset":
            ones = torch.ones((1, *self.layer.weight.shape[1:]), dtype=torch.float64, device=xq.device)
            if self._amax * ones.numel() < _F32_EXACT:
                xsum = self._conv(xq.float(), ones.float()).reshape(-1).double()
            else:
                xsum = self._conv(xq.double(), ones).reshape(-1)
        yint = self._run_blocks(blocks, N * Ho * Wo, xsum)  # (O, N*Ho*Wo)
        if route == "calibrate":
            return self._finish(self._conv_exact(xq), x.dtype, (1, -1, 1, 1))
        yint = yint.reshape(-1, N, Ho, Wo).transpose(0, 1)
        return self._finish(yint, x.dtype, (1, -1, 1, 1)).contiguous()


# ------------------------------------------------------------------------------------------------ model level
def _resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _batches(loader, n: int | None = None):
    for i, b in enumerate(loader):
        if n is not None and i >= n:
            break
        yield b[0] if isinstance(b, (tuple, list)) else b


def pim_layers(model: nn.Module) -> list[tuple[str, _PIMBase]]:
    return [(n, m) for n, m in model.named_modules() if isinstance(m, _PIMBase)]


def set_mode(model: nn.Module, mode: str) -> None:
    for _, m in pim_layers(model):
        m.mode = mode


def set_chip(model: nn.Module, seed: int) -> None:
    """Redraw every layer's device effects for a new chip instance."""
    for i, (_, m) in enumerate(pim_layers(model)):
        m.set_chip(_layer_seed(seed, i))
        m._noise_seed = _layer_seed(seed, i) * 7919 + 1


def _layer_seed(seed: int, i: int) -> int:
    return (int(seed) * 1_000_003 + i * 9_176 + 12_345) % (2**62)


def to_pim(model: nn.Module, hardware: HardwareConfig, *, calib_loader, input_shape=None, bits=None,
           seed: int = 0, fidelity: str = "exact", device: str = "auto", allow_digital: bool = False,
           calib_batches: int = 8) -> nn.Module:
    """A deep copy of `model` with BN folded and Conv2d/Linear layers replaced by PIM wrappers."""
    if fidelity not in ("exact", "fast"):
        raise CrossnasError(f"fidelity: expected exact or fast, got {fidelity!r}")
    dev = _resolve_device(device)
    m = copy.deepcopy(model).to(dev).eval()
    fold_batchnorm(m)
    bad = unmappable_layers(m)
    if bad and not allow_digital:
        raise CrossnasError("layers that cannot be mapped to crossbars: "
                            + "; ".join(f"{n} ({why})" for n, why in bad)
                            + " (pass allow_digital=True to keep them digital)")
    if bad:
        warnings.warn("kept digital, not simulated on crossbars: " + ", ".join(n for n, _ in bad),
                      stacklevel=2)
    skip = [n for n, _ in bad]
    targets = [(n, mod) for n, mod in m.named_modules() if isinstance(mod, (nn.Conv2d, nn.Linear))
               and not any(n == b or n.startswith(b + ".") for b in skip)]
    bits = dict(bits or {})
    unknown = sorted(set(bits) - {n for n, _ in targets})
    if unknown:
        raise CrossnasError(f"bits: no mappable Conv2d/Linear layer named {unknown}; layers: "
                            f"{[n for n, _ in targets]}")
    stats: dict[str, list[float]] = {n: [math.inf, 0.0] for n, _ in targets}
    hooks = []
    for n, mod in targets:
        def hook(_m, inp, _out, n=n):
            x = inp[0].detach()
            stats[n][0] = min(stats[n][0], float(x.min()))
            stats[n][1] = max(stats[n][1], float(x.abs().max()))
        hooks.append(mod.register_forward_hook(hook))
    seen = False
    with torch.no_grad():
        for x in _batches(calib_loader, calib_batches):
            m(x.to(dev))
            seen = True
    for h in hooks:
        h.remove()
    if not seen:
        raise CrossnasError("calib_loader: expected at least one batch")
    for i, (n, mod) in enumerate(targets):
        own_w, own_a = getattr(mod, "weight_bits", None), getattr(mod, "act_bits", None)
        wb, ab = bits.get(n, (None, None))  # precedence: bits argument, the layer's own, the hardware's
        wb = next(v for v in (wb, own_w, hardware.quant.weight_bits) if v is not None)
        ab = next(v for v in (ab, own_a, hardware.quant.act_bits) if v is not None)
        if hasattr(mod, "act_signed") and own_a is not None:
            signed = bool(mod.act_signed)
        else:
            signed = stats[n][0] < 0
        rng = stats[n][1]
        if own_a is not None and float(getattr(mod, "act_range", torch.zeros(()))) > 0:
            rng = float(mod.act_range)
        cls = PIMConv2d if isinstance(mod, nn.Conv2d) else PIMLinear
        wrapped = cls(mod, n, hardware, int(wb), int(ab), signed, rng, _layer_seed(seed, i), fidelity)
        parent, _, child = n.rpartition(".")
        setattr(m.get_submodule(parent) if parent else m, child, wrapped)
    m.to(dev)
    m.pim_digital_layers = skip  # layers the user asked to keep digital (allow_digital=True)
    if hardware.adc.range == "calibrated":
        set_mode(m, "calibrate")
        with torch.no_grad():
            for x in _batches(calib_loader, min(calib_batches, 2)):
                m(x.to(dev))
        for _, lay in pim_layers(m):
            lay.finish_calibration(hardware.adc.percentile)
    set_mode(m, "analog")
    return m


@dataclass
class PIMResult:
    accuracy_pim: float
    accuracy_pim_std: float
    accuracy_digital: float
    per_chip: list[float]


def _accuracy(model: nn.Module, loader, dev) -> float:
    correct = total = 0
    with torch.no_grad():
        for b in loader:
            x, y = b[0].to(dev), b[1].to(dev)
            correct += int((model(x).argmax(1) == y).sum())
            total += int(y.numel())
    return correct / max(total, 1)


def evaluate_pim(model: nn.Module, loader, hardware: HardwareConfig, *, calib_loader, chips: int = 5,
                 fidelity: str = "exact", seed: int = 0, device: str = "auto", bits=None,
                 allow_digital: bool = False) -> PIMResult:
    """Accuracy over `chips` chip instances (device effects redrawn per chip) and the digital accuracy of
    the same quantized integers."""
    dev = _resolve_device(device)
    pm = to_pim(model, hardware, calib_loader=calib_loader, bits=bits, seed=seed, fidelity=fidelity,
                device=device, allow_digital=allow_digital)
    set_mode(pm, "digital")
    acc_d = _accuracy(pm, loader, dev)
    set_mode(pm, "analog")
    per = []
    for c in range(chips):
        set_chip(pm, seed + c)
        per.append(_accuracy(pm, loader, dev))
    t = torch.tensor(per, dtype=torch.float64)
    return PIMResult(float(t.mean()), float(t.std()) if len(per) > 1 else 0.0, acc_d, per)
