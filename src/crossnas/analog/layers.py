"""PIM wrappers of the mappable layers: PIMLinear (Linear) and PIMConv2d (Conv2d, Conv1d as a height-1
Conv2d, grouped and depthwise convs as one MatrixCore of tiles per group). They quantize inputs, pick the
route, im2col the DAC chunk planes per memory block and rescale the integer outputs."""

from __future__ import annotations

from enum import Enum

import torch
import torch.nn.functional as F
from torch import nn

from crossnas.analog import adc, kernels
from crossnas.analog.core import MatrixCore
from crossnas.analog.kernels import exact_float
from crossnas.analog.plan import make_plan
from crossnas.errors import CrossnasError
from crossnas.hardware.config import HardwareConfig
from crossnas.quant import quantize_int, weight_range


class Route(Enum):
    DIGITAL = "digital"  # one quantized conv/matmul (lossless ADC and no device effects, or mode=digital)
    SLICED = "sliced"  # the exact bit-sliced crossbar computation
    FAST = "fast"  # effective weights plus the modelled conversion errors
    FAST_LOSSLESS = "fast_lossless"
    CALIBRATE = "calibrate"  # record partial sums, return the digital result


class _PIMBase(nn.Module):
    """Shared state of a PIM layer: quantized weights, one MatrixCore per group, mode."""

    def _setup(self, layer: nn.Module, name: str, hw: HardwareConfig, wb: int, ab: int, signed: bool,
               act_range: float, kernel_area: int, groups: int, seed: int, fidelity: str,
               kernel: str | None):
        self.layer, self.name, self.hw, self.fidelity, self.groups = layer, name, hw, fidelity, groups
        w = layer.weight.detach().double().reshape(layer.weight.shape[0], -1)
        wq, ws = quantize_int(w, wb, weight_range(w), True)
        self.register_buffer("wq", wq)
        self.register_buffer("w_scale", ws.reshape(()))
        self.register_buffer("act_range", torch.tensor(float(act_range), dtype=torch.float64))
        O = wq.shape[0] // groups
        plan = make_plan(name, hw, wb, ab, signed, O, wq.shape[1], kernel_area)
        self.cores = nn.ModuleList(MatrixCore(plan, wq[g * O:(g + 1) * O], hw, self._group_seed(seed, g),
                                              kernel) for g in range(groups))
        for c in self.cores:
            c.fast_terms = fidelity == "fast"
        self.mode = "analog"  # analog | digital | calibrate
        self.force_sliced = False

    @staticmethod
    def _group_seed(seed: int, g: int) -> int:
        return int(seed) if g == 0 else (int(seed) * 31 + g * 1_009) % (2**62)

    # ---- single-group views (inspection and tests)
    @property
    def plan(self):
        return self.cores[0].plan

    @property
    def device_effects(self) -> bool:
        return self.cores[0].device_effects

    def __getattr__(self, name):
        if name in ("levels", "_levels_ideal", "fs_cal", "fs_full", "chunk_w", "col_w", "w_fast", "reads"):
            return getattr(self._modules["cores"][0], name)
        return super().__getattr__(name)

    @property
    def w_tiles(self) -> list[torch.Tensor]:
        return self.cores[0].tiles

    @property
    def C(self) -> int:
        return self.plan.C

    @property
    def S(self) -> int:
        return self.plan.S

    @property
    def A(self) -> int:
        return self.plan.A

    @property
    def T(self) -> int:
        return self.plan.T

    def _adc_step(self) -> tuple[torch.Tensor, int]:
        return self.cores[0].step(), self.plan.qmax

    def _adc_signed(self) -> bool:
        return self.plan.adc_signed

    def _adc_dtype(self) -> torch.dtype:
        return kernels.adc_dtype(self.plan, self.device_effects)

    def _sum_dtype(self, qm: int | None = None) -> torch.dtype:
        return kernels.sum_dtype(self.plan)

    # ---- chip and calibration
    def set_chip(self, seed: int) -> None:
        """Draw this chip's device effects (frozen until the next call)."""
        for g, c in enumerate(self.cores):
            c.set_chip(self._group_seed(seed, g))

    def finish_calibration(self, percentile: float, scope: str = "tile") -> None:
        """ADC ranges from the recorded |partial sums|: one per (group, row tile), or one for the layer."""
        layer_range = None
        if scope == "layer":
            recs = [c.recorder for c in self.cores if c.recorder is not None]
            v = [r.tile(t) for r in recs for t in range(self.plan.T)]
            layer_range = adc.percentile_range(torch.cat(v), percentile) if v else None
        for c in self.cores:
            c.finish_calibration(percentile, layer_range)

    # ---- inputs and outputs
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

    def _finish(self, yint: torch.Tensor, dtype: torch.dtype, bias_shape=(-1,)) -> torch.Tensor:
        """Output rescale (weight scale x activation scale) plus bias, in the input's dtype."""
        dt = torch.float64 if dtype == torch.float64 else torch.float32
        y = yint.to(dt) * (self.w_scale * self.a_scale).to(dt)
        if self.layer.bias is not None:
            y = y + self.layer.bias.detach().to(dt).reshape(bias_shape)
        return y.to(dtype)

    @property
    def _digital_f32(self) -> bool:
        return all(c.digital_f32 for c in self.cores)

    @property
    def _wq32(self) -> torch.Tensor:
        if getattr(self, "_wq32_cache", None) is None or self._wq32_cache.device != self.wq.device:
            self._wq32_cache = self.wq.float()
        return self._wq32_cache

    @property
    def _w_fast(self) -> torch.Tensor:
        return torch.cat([c.w_fast for c in self.cores]) if self.groups > 1 else self.cores[0].w_fast

    def _route(self) -> Route:
        if self.mode == "digital":
            return Route.DIGITAL
        if self.mode == "calibrate":
            return Route.CALIBRATE
        lossless = all(c.lossless for c in self.cores)
        if self.fidelity == "exact":
            return Route.DIGITAL if lossless and not self.force_sliced else Route.SLICED
        return Route.FAST_LOSSLESS if lossless else Route.FAST

    def _fast_error(self, y: torch.Tensor, lossless: bool) -> torch.Tensor:
        O = self.plan.O
        for g, c in enumerate(self.cores):
            c.fast_error(y[:, g * O:(g + 1) * O], lossless)
        return y

    def _next_batch(self, device) -> None:
        for c in self.cores:
            c.next_batch(device)


    def _exact_int(self, xq: torch.Tensor) -> torch.Tensor:
        """Integer matmul; float32 when every partial sum is provably below 2^24 (exact), else float64."""
        if self._digital_f32:
            with exact_float():
                return xq.float() @ self._wq32.t()
        return xq.double() @ self.wq.t()

    def _int_matmul(self, xq: torch.Tensor) -> torch.Tensor:
        """(M, K) integer inputs -> (M, O) integer-domain outputs of the route (one group)."""
        route = self._route()
        if route is Route.DIGITAL:
            return self._exact_int(xq)
        if route in (Route.FAST, Route.FAST_LOSSLESS):
            with exact_float():
                return self._fast_error(xq.float() @ self._w_fast.t(), route is Route.FAST_LOSSLESS)
        core, p = self.cores[0], self.plan
        core.next_batch(xq.device)
        M = xq.shape[0]
        planes = p.planes(xq).permute(1, 0, 2)  # (K, M, C)
        mb = kernels.block_rows(p)
        blocks = ((m0, min(M, m0 + mb), planes[:, m0:m0 + mb].reshape(p.K, -1)) for m0 in range(0, M, mb))
        xsum = xq.double().sum(1) if p.scheme == "offset" else None
        out = core.run(blocks, M, xsum, calibrate=route is Route.CALIBRATE)
        return self._exact_int(xq) if route is Route.CALIBRATE else out.t()


class PIMLinear(_PIMBase):
    """Wraps an nn.Linear (or QuantLinear); computes it on simulated crossbars."""

    def __init__(self, layer: nn.Linear, name: str, hw: HardwareConfig, wb: int, ab: int, signed: bool,
                 act_range: float, seed: int = 0, fidelity: str = "exact", kernel: str | None = None):
        super().__init__()
        self._setup(layer, name, hw, wb, ab, signed, act_range, 1, 1, seed, fidelity, kernel)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shp = x.shape
        xq = self.quant_input(x.reshape(-1, shp[-1]))
        y = self._finish(self._int_matmul(xq), x.dtype)
        return y.reshape(*shp[:-1], -1)


def _same_pads(k: int, d: int) -> tuple[int, int]:
    total = d * (k - 1)  # as torch's padding="same": the extra pixel goes after
    return total // 2, total - total // 2


class PIMConv2d(_PIMBase):
    """Wraps an nn.Conv2d or nn.Conv1d (or QuantConv2d), any groups, numeric or "same"/"valid" padding and
    any padding mode; computes it on simulated crossbars via im2col (a Conv1d is a height-1 Conv2d)."""

    def __init__(self, layer: nn.Module, name: str, hw: HardwareConfig, wb: int, ab: int, signed: bool,
                 act_range: float, seed: int = 0, fidelity: str = "exact", kernel: str | None = None):
        super().__init__()
        if not isinstance(layer, (nn.Conv1d, nn.Conv2d)):
            raise CrossnasError(f"{name}: {type(layer).__name__} is not a Conv1d or Conv2d")
        self.one_d = isinstance(layer, nn.Conv1d)
        two = (lambda v: (1, *v)) if self.one_d else tuple
        self.kernel_size, self.stride, self.dilation = (two(layer.kernel_size), two(layer.stride),
                                                        two(layer.dilation))
        if isinstance(layer.padding, str):
            pads = [(0, 0) if layer.padding == "valid" else _same_pads(k, d)
                    for k, d in zip(self.kernel_size, self.dilation)]
        else:
            pads = [(p, p) for p in ((0, *layer.padding) if self.one_d else layer.padding)]
        (pt, pb), (pl, pr) = pads
        self.pads = (pl, pr, pt, pb)  # F.pad order: width, then height
        self.pad_mode = "constant" if layer.padding_mode == "zeros" else layer.padding_mode
        kh, kw = self.kernel_size
        self._setup(layer, name, hw, wb, ab, signed, act_range, kh * kw, layer.groups, seed, fidelity, kernel)

    @property
    def weight_shape(self) -> tuple[int, ...]:
        w = self.layer.weight
        return (w.shape[0], w.shape[1], *self.kernel_size)

    def _conv(self, x: torch.Tensor, w: torch.Tensor, groups: int | None = None) -> torch.Tensor:
        g = self.groups if groups is None else groups
        if x.is_cpu:  # oneDNN direct convolution: exact for integers below 2^24
            return F.conv2d(x, w, None, self.stride, 0, self.dilation, g)
        # CUDA: no TF32 and no cuDNN (its Winograd/FFT algorithms are not exact on integers)
        with exact_float(), torch.backends.cudnn.flags(enabled=False):
            return F.conv2d(x, w, None, self.stride, 0, self.dilation, g)

    def _conv_exact(self, xq: torch.Tensor) -> torch.Tensor:
        """Digital integer conv: one float32 conv when every sum is provably below 2^24, else float64."""
        if self._digital_f32:
            return self._conv(xq.float(), self._wq32.reshape(self.weight_shape))
        return self._conv(xq.double(), self.wq.reshape(self.weight_shape))

    def _patch_blocks(self, planes: torch.Tensor, core: MatrixCore):
        """im2col of one group's DAC chunk planes (N, Cg, Hp, Wp, C), once per memory block:
        (r0, r1, (K, (r1-r0)*C)). K-major (rows in weight.reshape(O, -1) order), then output position,
        then chunk: the copy reads runs of Wo*C contiguous bytes, and every row tile is a contiguous row
        range."""
        N, Cin, Hp, Wp, C = planes.shape
        (kh, kw), (sh, sw), (dh, dw) = self.kernel_size, self.stride, self.dilation
        Ho, Wo = (Hp - dh * (kh - 1) - 1) // sh + 1, (Wp - dw * (kw - 1) - 1) // sw + 1
        s = planes.stride()
        pt = planes.as_strided((Cin, kh, kw, N, Ho, Wo, C),
                               (s[1], s[2] * dh, s[3] * dw, s[0], s[2] * sh, s[3] * sw, s[4]))
        K, L = Cin * kh * kw, Ho * Wo
        pos = kernels.block_rows(core.plan)
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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.one_d:
            return self._forward2d(x.unsqueeze(2)).squeeze(2)
        return self._forward2d(x)

    def _forward2d(self, x: torch.Tensor) -> torch.Tensor:
        xq = self.quant_input(x)
        if any(self.pads):
            xq = F.pad(xq, self.pads, mode=self.pad_mode)
        route = self._route()
        if route is Route.DIGITAL:
            return self._finish(self._conv_exact(xq), x.dtype, (1, -1, 1, 1))
        if route in (Route.FAST, Route.FAST_LOSSLESS):
            y = self._conv(xq.float(), self._w_fast.reshape(self.weight_shape))
            return self._finish(self._fast_error(y, route is Route.FAST_LOSSLESS), x.dtype, (1, -1, 1, 1))
        p, G = self.plan, self.groups
        Cg, (kh, kw) = xq.shape[1] // G, self.kernel_size
        xsum = None
        if p.scheme == "offset":
            ones = torch.ones((G, Cg, kh, kw), dtype=torch.float64, device=xq.device)
            amax = 2 ** (p.abits - 1) if p.act_signed else 2**p.abits - 1
            if amax * Cg * kh * kw < 2**24:
                xsum = self._conv(xq.float(), ones.float()).double()
            else:
                xsum = self._conv(xq.double(), ones)
        N = xq.shape[0]
        Ho = (xq.shape[2] - self.dilation[0] * (kh - 1) - 1) // self.stride[0] + 1
        Wo = (xq.shape[3] - self.dilation[1] * (kw - 1) - 1) // self.stride[1] + 1
        planes = p.planes(xq)  # (N, Cin, Hp, Wp, C) uint8
        ys = []
        for g, core in enumerate(self.cores):
            core.next_batch(xq.device)
            blocks = self._patch_blocks(planes[:, g * Cg:(g + 1) * Cg], core)
            xs = None if xsum is None else xsum[:, g].reshape(-1)
            ys.append(core.run(blocks, N * Ho * Wo, xs, calibrate=route is Route.CALIBRATE))
        if route is Route.CALIBRATE:
            return self._finish(self._conv_exact(xq), x.dtype, (1, -1, 1, 1))
        yint = ys[0] if G == 1 else torch.cat(ys)  # (O, N*Ho*Wo)
        yint = yint.reshape(-1, N, Ho, Wo).transpose(0, 1)
        return self._finish(yint, x.dtype, (1, -1, 1, 1)).contiguous()
