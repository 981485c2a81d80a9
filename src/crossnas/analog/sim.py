"""Analog PIM inference simulator: conv/linear layers computed as the mapped crossbars would.

See docs/analog.md for the model. Mapping (slices, input chunks, row tiles) comes from
crossnas.cost.mapping_rules, the same rules the cost model uses.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from crossnas.cost.mapping_rules import input_chunks, row_tile_bounds, rows_per_tile, weight_slices
from crossnas.errors import CrossnasError
from crossnas.hardware.config import HardwareConfig
from crossnas.quant import quantize_int, weight_range

PCM_T0_S = 20.0  # Nandakumar et al. 2019 / aihwkit PCMLikeNoiseModel
PCM_GMAX_US = 25.0
_BLOCK_BYTES = 128 * 2**20


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
    d = hw.device
    checks = [(hw.dac.bits < 1, "dac.bits", hw.dac.bits), (adc_bits < 1, "adc.bits", adc_bits),
              (d.bits_per_cell < 1, "device.bits_per_cell", d.bits_per_cell),
              (d.bits_per_cell > wb, "device.bits_per_cell", f"{d.bits_per_cell} > weight bits {wb}"),
              (d.variation < 0, "device.variation", d.variation), (wb < 2, "weight_bits", wb),
              (ab < 1, "act_bits", ab), (hw.crossbar.rows < 1, "crossbar.rows", hw.crossbar.rows),
              (not 0 <= d.stuck_off_rate <= 1, "device.stuck_off_rate", d.stuck_off_rate),
              (not 0 <= d.stuck_on_rate <= 1, "device.stuck_on_rate", d.stuck_on_rate)]
    for bad, key, val in checks:
        if bad:
            raise CrossnasError(f"{name}: {key}: invalid setting {val!r}")


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
        self.K = K
        # full-scale partial sum per tile (rows actually used in the tile)
        tile_rows = torch.tensor([b - a for a, b in p.bounds], dtype=torch.float64)
        self.register_buffer("fs_full", tile_rows * (2**p.dac - 1) * (2**p.cell - 1))
        self.register_buffer("fs_cal", torch.zeros((), dtype=torch.float64))
        self.mode = "analog"  # analog | digital | calibrate
        self.force_sliced = False
        self._cal_samples: list[torch.Tensor] = []
        self.device_effects = _has_device_effects(hw)
        self._levels_ideal = self._weight_levels()  # (A, S, O, K) integer levels
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
        Lmax = 2**p.cell - 1
        sgn = torch.tensor([1.0, -1.0] if self.A == 2 else [1.0], dtype=torch.float64, device=lv.device)
        sw = (2.0 ** (torch.arange(self.S, device=lv.device) * p.cell)).double()
        self.register_buffer("w_eff", torch.einsum("asok,a,s->ok", lv, sgn, sw), persistent=False)
        # tiled levels (T, R, A*S*O) for the batched matmul
        R, T = p.rows, self.T
        lvt = lv[:1] - lv[1:] if self._adc_signed() else lv  # analog subtraction = difference of levels
        lvp = F.pad(lvt, (0, T * R - self.K)).reshape(lvt.shape[0], self.S, -1, T, R)
        self.register_buffer("w_tiles", lvp.permute(3, 4, 0, 1, 2).reshape(T, R, -1).contiguous(),
                             persistent=False)
        self.register_buffer("sgn", sgn, persistent=False)
        self.register_buffer("sw", sw, persistent=False)
        self._lmax = Lmax

    # ---- inputs
    def quant_input(self, x: torch.Tensor) -> torch.Tensor:
        q, _ = quantize_int(x.double(), self.plan.abits, self.act_range, self.plan.act_signed)
        return q

    @property
    def a_scale(self) -> torch.Tensor:
        p = self.plan
        m = 2 ** (p.abits - 1) - 1 if p.act_signed else 2**p.abits - 1
        return self.act_range.clamp_min(1e-12) / m

    def _chunks(self, xq: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(M, K) ints -> (M, K, C) DAC chunks (0..2^dac-1) and chunk weights (C,)."""
        p = self.plan
        d = p.dac
        if p.act_signed:
            s = (xq < 0).to(torch.int64)
            low = xq.to(torch.int64) + s * 2 ** (p.abits - 1)  # two's complement low bits
            nm = self.C - 1
            sh = torch.arange(nm, device=xq.device) * d
            mag = (low.unsqueeze(-1) >> sh) & (2**d - 1)
            ch = torch.cat([mag, s.unsqueeze(-1)], -1)
            cw = torch.cat([2.0 ** sh.double(), torch.tensor([-(2.0 ** (p.abits - 1))], device=xq.device,
                                                              dtype=torch.float64)])
        else:
            sh = torch.arange(self.C, device=xq.device) * d
            ch = (xq.to(torch.int64).unsqueeze(-1) >> sh) & (2**d - 1)
            cw = 2.0 ** sh.double()
        return ch, cw

    # ---- ADC
    def _adc_lossless(self) -> bool:
        p = self.plan
        qm = 2 ** (p.adc_bits - 1) - 1 if self._adc_signed() else 2**p.adc_bits - 1
        return bool(qm >= self.fs_full.max().item()) and self.hw.adc.range == "full_scale"

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

    def _adc(self, ps: torch.Tensor) -> torch.Tensor:
        """ADC codes (integers) of partial sums with tiles on dim 0: round(ps / step), clipped."""
        step, qm = self._adc_step()
        st = step.to(ps.dtype).reshape([-1] + [1] * (ps.dim() - 1))
        lo = -qm if self._adc_signed() else 0
        return torch.clamp(torch.round(ps / st), lo, qm)

    # ---- core: (M, K) integer inputs -> (M, O) integer-domain outputs
    def _int_matmul(self, xq: torch.Tensor) -> torch.Tensor:
        if self.mode == "digital":
            return self._exact_int(xq)
        lossless = self._adc_lossless() and not self.device_effects
        if self.mode == "calibrate" or self.fidelity == "exact":
            if lossless and not self.force_sliced and self.mode != "calibrate":
                return self._exact_int(xq)
            return self._sliced(xq)
        return self._fast(xq, lossless)

    def _exact_int(self, xq: torch.Tensor) -> torch.Tensor:
        """Integer matmul; float32 when every partial sum is provably below 2^24 (exact), else float64."""
        p = self.plan
        amax = 2 ** (p.abits - 1) if p.act_signed else 2**p.abits - 1
        if amax * float(self.wq.abs().sum(1).max()) < 2**24:
            return (xq.float() @ self._wq32.t()).double()
        return xq @ self.wq.t()

    @property
    def _wq32(self) -> torch.Tensor:
        if getattr(self, "_wq32_cache", None) is None or self._wq32_cache.device != self.wq.device:
            self._wq32_cache = self.wq.float()
        return self._wq32_cache

    def _offset_term(self, xq: torch.Tensor) -> torch.Tensor:
        if self.plan.scheme != "offset":
            return 0.0
        return (2.0 ** (self.plan.wbits - 1)) * xq.sum(1, keepdim=True)

    def _sliced(self, xq: torch.Tensor) -> torch.Tensor:
        M, K = xq.shape
        T, R, C, S = self.T, self.plan.rows, self.C, self.S
        A = 1 if self._adc_signed() else self.A
        O = self.wq.shape[0]
        exact32 = (not self.device_effects) and self.fs_full.max().item() < 2**24
        dt = torch.float32 if exact32 else torch.float64
        wt = self.w_tiles.to(dt)
        out = torch.empty(M, O, dtype=torch.float64, device=xq.device)
        per_row = T * C * A * S * O * (4 if exact32 else 8) * 3
        blk = max(1, _BLOCK_BYTES // max(per_row, 1))
        for m0 in range(0, M, blk):  # memory blocking over output positions only
            xb = xq[m0:m0 + blk]
            mb = xb.shape[0]
            ch, cw = self._chunks(xb)  # (mb, K, C)
            ch = F.pad(ch.to(dt), (0, 0, 0, T * R - K)).reshape(mb, T, R, C)
            xin = ch.permute(1, 0, 3, 2).reshape(T, mb * C, R)
            ps = torch.bmm(xin, wt).reshape(T, mb, C, A, S, O)
            if self.mode == "calibrate":
                self._record(ps)
                out[m0:m0 + blk] = xb @ self.wq.t()
                continue
            ps = ps.double()  # ADC arithmetic in float64 (the step is not an integer)
            if self._adc_signed():
                ps = ps[:, :, :, 0]  # (T, mb, C, S, O): pos - neg already subtracted in the column
                codes = torch.einsum("tmcso,c,s->tmo", self._adc(ps), cw, self.sw)
            else:
                codes = torch.einsum("tmcaso,c,a,s->tmo", self._adc(ps), cw, self.sgn, self.sw)
            # integer code sums per tile (exact), then scaled by each tile's ADC step
            y = (codes * self._adc_step()[0].reshape(-1, 1, 1)).sum(0)
            out[m0:m0 + blk] = y - self._offset_term(xb)
        return out

    def _fast(self, xq: torch.Tensor, lossless: bool) -> torch.Tensor:
        """One matmul with the chip's effective weights; ADC error as additive noise of variance step^2/12
        per conversion, summed over the conversions (chunks x slices x arrays) feeding each output."""
        y = xq @ self.w_eff.t()
        if self.plan.scheme == "offset":
            y = y - self._offset_term(xq)
        if lossless:
            return y
        step, _ = self._adc_step()
        if bool((step <= 1.0).all()):
            return y
        _, cw = self._chunks(xq[:1])
        n_arr = 1 if self._adc_signed() else self.A
        coef2 = (cw**2).sum() * (self.sw**2).sum() * n_arr
        var = (step**2 / 12.0 * (step > 1.0)).sum() * coef2
        g = torch.Generator(device=y.device)
        g.manual_seed(self._noise_seed)
        self._noise_seed += 1
        return y + torch.randn(y.shape, generator=g, dtype=y.dtype, device=y.device) * var.sqrt()

    def _record(self, ps: torch.Tensor) -> None:
        v = ps
        v = v.abs().reshape(-1).float()
        if v.numel() > 200_000:
            v = v[torch.randint(v.numel(), (200_000,), generator=torch.Generator().manual_seed(0))
                  .to(v.device)]
        self._cal_samples.append(v.cpu())

    def finish_calibration(self, percentile: float) -> None:
        if self._cal_samples:
            v = torch.cat(self._cal_samples)
            if v.numel() > 2_000_000:
                v = v[:2_000_000]
            self.fs_cal.fill_(max(float(torch.quantile(v.double(), percentile / 100.0)), 1.0))
        self._cal_samples = []

    def _finish(self, yint: torch.Tensor) -> torch.Tensor:
        y = yint * (self.w_scale * self.a_scale)
        if self.layer.bias is not None:
            y = y + self.layer.bias.detach().double()
        return y


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
        y = self._finish(self._int_matmul(xq))
        return y.reshape(*shp[:-1], -1).to(x.dtype)


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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lay = self.layer
        N, _, H, W = x.shape
        xq = self.quant_input(x)
        direct = self.mode == "digital" or (self.fidelity == "exact" and self.mode == "analog"
                                            and not self.force_sliced and self._adc_lossless()
                                            and not self.device_effects)
        p = self.plan
        amax = 2 ** (p.abits - 1) if p.act_signed else 2**p.abits - 1
        if direct and amax * float(self.wq.abs().sum(1).max()) < 2**24:  # one exact float32 conv
            w32 = self._wq32.reshape(lay.weight.shape)
            yint = F.conv2d(xq.float(), w32, None, lay.stride, lay.padding, lay.dilation).double()
            y = yint * (self.w_scale * self.a_scale)
            if lay.bias is not None:
                y = y + lay.bias.detach().double().reshape(1, -1, 1, 1)
            return y.to(x.dtype)
        cols = F.unfold(xq, lay.kernel_size, dilation=lay.dilation, padding=lay.padding, stride=lay.stride)
        L = cols.shape[-1]
        yint = self._int_matmul(cols.transpose(1, 2).reshape(N * L, -1))
        y = self._finish(yint)
        kh, kw = lay.kernel_size
        Ho = (H + 2 * lay.padding[0] - lay.dilation[0] * (kh - 1) - 1) // lay.stride[0] + 1
        Wo = (W + 2 * lay.padding[1] - lay.dilation[1] * (kw - 1) - 1) // lay.stride[1] + 1
        return y.reshape(N, Ho, Wo, -1).permute(0, 3, 1, 2).to(x.dtype).contiguous()


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
    targets = [(n, mod) for n, mod in m.named_modules() if isinstance(mod, (nn.Conv2d, nn.Linear))]
    bad = [n for n, mod in targets if isinstance(mod, nn.Conv2d)
           and (mod.groups != 1 or isinstance(mod.padding, str) or mod.padding_mode != "zeros")]
    if bad and not allow_digital:
        raise CrossnasError(f"layers that cannot be mapped to crossbars: {bad} (pass allow_digital=True "
                            "to keep them digital)")
    targets = [(n, mod) for n, mod in targets if n not in bad]
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
    bits = bits or {}
    for i, (n, mod) in enumerate(targets):
        own_w, own_a = getattr(mod, "weight_bits", None), getattr(mod, "act_bits", None)
        wb, ab = bits.get(n, (None, None))
        wb = wb or own_w or hardware.quant.weight_bits
        ab = ab or own_a or hardware.quant.act_bits
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
