"""The one network description: trace a built nn.Module into the layer list the hardware sees.

The cost model and the analog simulator learn about a network only through `extract_layers`, so the
module that is trained and the layers that are mapped can never disagree.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from crossnas.errors import CrossnasError

# Layer kinds: matrix layers map onto crossbars; the rest run in digital periphery.
MATRIX_KINDS = ("conv", "linear")


@dataclass
class LayerSpec:
    """One layer as the hardware sees it. Sizes are per inference (batch 1)."""

    name: str
    kind: str  # conv | linear | pool | add | act
    in_channels: int
    out_channels: int
    kernel: tuple[int, int] = (1, 1)
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    groups: int = 1
    in_hw: tuple[int, int] = (1, 1)
    out_hw: tuple[int, int] = (1, 1)
    macs: int = 0
    weight_bits: int | None = None  # None: take the hardware default
    act_bits: int | None = None
    act_signed: bool = False
    has_bias: bool = False
    op: str = ""  # pooling / activation type, e.g. "max", "avg", "relu"

    @property
    def rows_needed(self) -> int:
        """Unrolled input rows of one output column (C/g * kh * kw for conv, in_features for linear)."""
        return self.in_channels // self.groups * self.kernel[0] * self.kernel[1]

    @property
    def outputs(self) -> int:
        """Output positions per inference (columns are re-used across them)."""
        return self.out_hw[0] * self.out_hw[1]

    @property
    def out_elements(self) -> int:
        return self.out_channels * self.outputs

    def to_dict(self) -> dict:
        return asdict(self)


def _pair(v) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


def extract_layers(model: nn.Module, input_shape: tuple[int, ...], *, include_digital: bool = True,
                   strict: bool = False) -> list[LayerSpec]:
    """Run `model` once on a zero input of shape (C, H, W), (C, L) or (features,); its layers in order.

    Matrix layers are those `mapping_rules.mappable` accepts (Conv1d, Conv2d incl. grouped/depthwise, Linear;
    the crossnas Quant* subclasses' bits are read). Everything else the forward pass computes is seen through
    a torch function mode: element-wise activations (module or functional: ReLU, GELU, SiLU, Hardswish,
    F.relu, ...) and residual additions/products become digital layers, pooling and reductions pooling
    layers, shape bookkeeping is free; anything else is listed by `uncosted(layers)` and warned about
    (`strict=True`: a CrossnasError naming it).
    """
    from crossnas.network_trace import trace

    records, skipped = trace(model, input_shape, _spec)
    if not include_digital:
        records = [r for r in records if r.kind in MATRIX_KINDS]
    if skipped:
        msg = f"not costed ({len(skipped)}): " + ", ".join(skipped[:8]) + (" ..." if len(skipped) > 8 else "")
        if strict:
            raise CrossnasError(f"strict: the cost model cannot map {msg}")
        import warnings

        warnings.warn(msg, UserWarning, stacklevel=2)
    return _Layers(records, skipped)


class _Layers(list):
    """The layer list, carrying the names of what the tracer saw but could not cost (`.uncosted`)."""

    def __init__(self, items, uncosted):
        super().__init__(items)
        self.uncosted = list(uncosted)


def uncosted(layers) -> list[str]:
    """What `extract_layers` saw but could not cost (names with the op), [] when everything is costed."""
    return list(getattr(layers, "uncosted", []))


def _hw2(t: torch.Tensor) -> tuple[int, int]:
    if t.dim() == 4:
        return (int(t.shape[2]), int(t.shape[3]))
    if t.dim() == 3:
        return (int(t.shape[2]), 1)
    return (1, 1)


def _spec(name: str, mod: nn.Module, x: torch.Tensor, y: torch.Tensor) -> LayerSpec:
    common = dict(weight_bits=getattr(mod, "weight_bits", None), act_bits=getattr(mod, "act_bits", None),
                  act_signed=bool(getattr(mod, "act_signed", False)))
    if isinstance(mod, (nn.Conv2d, nn.Conv1d)):
        out_hw = _hw2(y)
        k = _pair(mod.kernel_size) if isinstance(mod, nn.Conv2d) else (int(mod.kernel_size[0]), 1)
        st = _pair(mod.stride) if isinstance(mod, nn.Conv2d) else (int(mod.stride[0]), 1)
        pd = mod.padding if isinstance(mod.padding, str) else (
            _pair(mod.padding) if isinstance(mod, nn.Conv2d) else (int(mod.padding[0]), 0))
        pd = (0, 0) if isinstance(pd, str) else pd
        macs = mod.out_channels * out_hw[0] * out_hw[1] * (mod.in_channels // mod.groups) * k[0] * k[1]
        return LayerSpec(name, "conv", mod.in_channels, mod.out_channels, k, st, pd, mod.groups, _hw2(x),
                         out_hw, macs, has_bias=mod.bias is not None, **common)
    if isinstance(mod, nn.Linear):
        rows = max(1, x.numel() // max(mod.in_features, 1))  # Linear over a sequence: one output per row
        return LayerSpec(name, "linear", mod.in_features, mod.out_features, in_hw=(rows, 1),
                         out_hw=(rows, 1),
                         macs=mod.in_features * mod.out_features * rows, has_bias=mod.bias is not None,
                         **common)
    raise CrossnasError(f"{name}: not a matrix layer")


def digital_spec(name: str, kind: str, op: str, x: torch.Tensor, y: torch.Tensor) -> LayerSpec:
    """A digital layer (pool | act | add) from its input and output tensors (batch 1)."""
    c_in = int(x.shape[1]) if x.dim() >= 2 else 1
    c_out = int(y.shape[1]) if y.dim() >= 2 else 1
    in_hw, out_hw = _hw2(x), _hw2(y)
    if y.dim() < 2 or x.dim() > 4:  # flattened or unusual layouts: count elements as channels
        c_in, c_out, in_hw, out_hw = int(x[0].numel()), int(max(y.numel(), 1)), (1, 1), (1, 1)
    if kind == "pool":
        k = (max(1, in_hw[0] // max(out_hw[0], 1)), max(1, in_hw[1] // max(out_hw[1], 1)))
        if x.dim() == 4 and y.dim() == 2:  # global reduction (x.mean((2, 3)))
            k = in_hw
        return LayerSpec(name, "pool", c_in, c_out, kernel=k, stride=k, in_hw=in_hw, out_hw=out_hw, op=op)
    return LayerSpec(name, kind, c_out, c_out, in_hw=out_hw, out_hw=out_hw, op=op)
