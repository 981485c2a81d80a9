"""Symmetric uniform quantizers shared by QAT training, the cost model and the analog simulator.

Convention (one place, used everywhere):
- weights: b bits including the sign, integers q in [-(2^(b-1)-1), 2^(b-1)-1], scale = max|w| / qmax;
- activations after ReLU: unsigned, q in [0, 2^b - 1]; signed activations use the weight grid;
- the activation range is a running max of |x| during training (EMA), frozen in eval mode.
Fake quantization uses a straight-through estimator, so one module serves every bit width.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from crossnas.errors import CrossnasError


def qmax(bits: int, signed: bool) -> int:
    return 2 ** (bits - 1) - 1 if signed else 2**bits - 1


def quantize_int(x: torch.Tensor, bits: int, scale_range: torch.Tensor | float, signed: bool
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Integer codes (as float tensor) and the scale, so that x ~= q * scale."""
    if bits < 1 or (signed and bits < 2):
        raise ValueError(f"bits must be >= {2 if signed else 1} for {'signed' if signed else 'unsigned'} "
                         f"values, got {bits}")
    m = qmax(bits, signed)
    rng = torch.as_tensor(scale_range, dtype=x.dtype, device=x.device).clamp_min(1e-12)
    scale = rng / m
    lo = -m if signed else 0
    return torch.clamp(torch.round(x / scale), lo, m), scale


def fake_quant(x: torch.Tensor, bits: int | None, scale_range: torch.Tensor | float, signed: bool
               ) -> torch.Tensor:
    """Quantize-dequantize with a straight-through gradient (identity when bits is None)."""
    if bits is None:
        return x
    q, scale = quantize_int(x, bits, scale_range, signed)
    return x + (q * scale - x).detach()


def weight_range(w: torch.Tensor) -> torch.Tensor:
    return w.detach().abs().max()


class _QuantMixin:
    """Weight/input fake quantization for Conv2d and Linear; bits None means full precision."""

    weight_bits: int | None
    act_bits: int | None
    act_signed: bool

    def _init_quant(self, weight_bits, act_bits, act_signed, momentum=0.1):
        self.weight_bits = weight_bits
        self.act_bits = act_bits
        self.act_signed = act_signed
        self.momentum = momentum
        self.register_buffer("act_range", torch.zeros(()))

    def quant_input(self, x: torch.Tensor) -> torch.Tensor:
        if self.act_bits is None:
            return x
        if self.training:
            cur = x.detach().abs().max()
            with torch.no_grad():
                if self.act_range.item() == 0:
                    self.act_range.copy_(cur)
                else:
                    self.act_range.mul_(1 - self.momentum).add_(self.momentum * cur)
        x = x if self.act_signed else F.relu(x)
        return fake_quant(x, self.act_bits, self.act_range, self.act_signed)

    def quant_weight(self, w: torch.Tensor) -> torch.Tensor:
        return fake_quant(w, self.weight_bits, weight_range(w), True)


class QuantConv2d(_QuantMixin, nn.Conv2d):
    """nn.Conv2d whose weight and input are fake-quantized (weight_bits/act_bits None = float)."""

    def __init__(self, *args, weight_bits: int | None = None, act_bits: int | None = None,
                 act_signed: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self._init_quant(weight_bits, act_bits, act_signed)

    def forward(self, x):  # x: (N, C, H, W)
        return self._conv_forward(self.quant_input(x), self.quant_weight(self.weight), self.bias)


class QuantLinear(_QuantMixin, nn.Linear):
    """nn.Linear whose weight and input are fake-quantized (weight_bits/act_bits None = float)."""

    def __init__(self, *args, weight_bits: int | None = None, act_bits: int | None = None,
                 act_signed: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self._init_quant(weight_bits, act_bits, act_signed)

    def forward(self, x):  # x: (N, in_features)
        return F.linear(self.quant_input(x), self.quant_weight(self.weight), self.bias)


LayerBits = dict[str, tuple[int | None, int | None]]


def _matrix_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    return [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Conv2d | nn.Linear)]


def _quant_twin(layer: nn.Module, wb: int | None, ab: int | None, signed: bool) -> nn.Module:
    """A QuantConv2d/QuantLinear sharing `layer`'s parameters (and its buffers' values if it was one)."""
    if isinstance(layer, QuantConv2d | QuantLinear):
        layer.weight_bits, layer.act_bits, layer.act_signed = wb, ab, signed
        return layer
    dd = {"device": layer.weight.device, "dtype": layer.weight.dtype}
    if isinstance(layer, nn.Conv2d):
        new = QuantConv2d(layer.in_channels, layer.out_channels, layer.kernel_size, stride=layer.stride,
                          padding=layer.padding, dilation=layer.dilation, groups=layer.groups,
                          bias=layer.bias is not None, padding_mode=layer.padding_mode,
                          weight_bits=wb, act_bits=ab, act_signed=signed, **dd)
    else:
        new = QuantLinear(layer.in_features, layer.out_features, bias=layer.bias is not None,
                          weight_bits=wb, act_bits=ab, act_signed=signed, **dd)
    new.weight = layer.weight
    if layer.bias is not None:
        new.bias = layer.bias
    return new.train(layer.training)


def quantize_model(model: nn.Module, weight_bits: int | None | LayerBits, act_bits: int | None = None,
                   *, first_signed: bool = True) -> nn.Module:
    """Make a float network quantization-aware: every nn.Conv2d / nn.Linear becomes a QuantConv2d /
    QuantLinear with the same parameters (shared, not copied), stride, padding, dilation and groups.

    `weight_bits`/`act_bits` are the bits of every layer, or `weight_bits` is a dict
    {layer name (as in named_modules): (weight bits, act bits)} naming every matrix layer (act_bits must
    then be None). The first layer (in module order) quantizes its input as signed when `first_signed`
    (normalised images can be negative); the others as unsigned, as they follow a ReLU. Layers that are
    already quantized get their bits set. The model is changed in place and returned.

    The activation ranges start at 0: train (QAT) or run a few batches in train mode before eval.
    """
    layers = _matrix_layers(model)
    if not layers:
        raise CrossnasError(f"quantize_model: {type(model).__name__} has no nn.Conv2d or nn.Linear layer")
    names = [n for n, _ in layers]
    if isinstance(weight_bits, dict):
        if act_bits is not None:
            raise CrossnasError("quantize_model: act_bits must be None when bits are given per layer")
        unknown = sorted(set(weight_bits) - set(names))
        missing = [n for n in names if n not in weight_bits]
        if unknown or missing:
            raise CrossnasError(f"quantize_model: per-layer bits must name exactly the layers {names}; "
                                f"unknown {unknown}, missing {missing}")
        bits = {n: _check_pair(n, weight_bits[n]) for n in names}
    else:
        bits = {n: _check_pair(n, (weight_bits, act_bits)) for n in names}
    for i, (name, layer) in enumerate(layers):
        wb, ab = bits[name]
        signed = first_signed and i == 0
        if signed and ab is not None and ab < 2:
            raise CrossnasError(f"quantize_model: act_bits of the first layer {name!r} (signed input): "
                                f"expected >= 2, got {ab}")
        new = _quant_twin(layer, wb, ab, signed)
        if name == "":
            return new  # the model is itself a single layer
        if new is not layer:
            _set_submodule(model, name, new)
    return model


def _check_pair(name: str, pair) -> tuple[int | None, int | None]:
    try:
        wb, ab = pair
    except (TypeError, ValueError):
        raise CrossnasError(f"quantize_model: bits of {name!r}: expected (weight_bits, act_bits), "
                            f"got {pair!r}") from None
    for what, b, lo in (("weight_bits", wb, 2), ("act_bits", ab, 1)):
        if b is not None and (isinstance(b, bool) or not isinstance(b, int) or b < lo):
            raise CrossnasError(f"quantize_model: {what} of {name!r}: expected an integer >= {lo} or None, "
                                f"got {b!r}")
    return wb, ab


def _set_submodule(model: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, attr = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, attr, new)
