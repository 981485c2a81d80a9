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
