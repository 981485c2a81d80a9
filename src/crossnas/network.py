"""The one network description: trace a built nn.Module into the layer list the hardware sees.

The cost model and the analog simulator learn about a network only through `extract_layers`, so the
module that is trained and the layers that are mapped can never disagree.
"""

from __future__ import annotations

import math
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


def extract_layers(model: nn.Module, input_shape: tuple[int, ...], *, include_digital: bool = True
                   ) -> list[LayerSpec]:
    """Run `model` once on a zero input of shape (C, H, W) or (features,) and return its layers in order.

    Conv2d/Linear (including the crossnas Quant* subclasses, whose bits are read), pooling and
    ReLU-like activations are recorded by forward hooks; residual additions are found by tracing the
    `torch.add`/`+` calls through `torch.fx` when possible and otherwise omitted.
    """
    records: list[LayerSpec] = []
    hooks = []

    def hook(name):
        def fn(mod, inputs, output):
            x = inputs[0]
            records.append(_spec(name, mod, x, output))
        return fn

    for name, mod in model.named_modules():
        if isinstance(mod, (nn.Conv2d, nn.Linear)) or (include_digital and isinstance(mod, _DIGITAL)):
            hooks.append(mod.register_forward_hook(hook(name)))
    was_training = model.training
    model.eval()
    try:
        param = next(model.parameters(), None)
        dev = param.device if param is not None else torch.device("cpu")
        with torch.no_grad():
            model(torch.zeros((1, *input_shape), device=dev))
    except Exception as e:  # noqa: BLE001 - any failure means the model cannot be traced
        raise CrossnasError(f"model cannot be traced on input {tuple(input_shape)}: {e}") from None
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    if include_digital:
        records.extend(_find_adds(model, input_shape))
    return records


_DIGITAL = (nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d, nn.ReLU, nn.ReLU6)


def _spec(name: str, mod: nn.Module, x: torch.Tensor, y: torch.Tensor) -> LayerSpec:
    common = dict(weight_bits=getattr(mod, "weight_bits", None), act_bits=getattr(mod, "act_bits", None),
                  act_signed=bool(getattr(mod, "act_signed", False)))
    if isinstance(mod, nn.Conv2d):
        out_hw = (y.shape[2], y.shape[3])
        macs = mod.out_channels * out_hw[0] * out_hw[1] * (mod.in_channels // mod.groups) * math.prod(
            mod.kernel_size)
        return LayerSpec(name, "conv", mod.in_channels, mod.out_channels, _pair(mod.kernel_size),
                         _pair(mod.stride), _pair(mod.padding), mod.groups, (x.shape[2], x.shape[3]), out_hw,
                         macs, has_bias=mod.bias is not None, **common)
    if isinstance(mod, nn.Linear):
        return LayerSpec(name, "linear", mod.in_features, mod.out_features,
                         macs=mod.in_features * mod.out_features, has_bias=mod.bias is not None, **common)
    c = x.shape[1]
    in_hw = (x.shape[2], x.shape[3]) if x.dim() == 4 else (1, 1)
    out_hw = (y.shape[2], y.shape[3]) if y.dim() == 4 else (1, 1)
    if isinstance(mod, (nn.ReLU, nn.ReLU6)):
        return LayerSpec(name, "act", c, c, in_hw=in_hw, out_hw=out_hw, op="relu")
    op = "max" if isinstance(mod, (nn.MaxPool2d, nn.AdaptiveMaxPool2d)) else "avg"
    k = _pair(getattr(mod, "kernel_size", 1) or 1) if not isinstance(
        mod, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)) else (
        max(1, in_hw[0] // max(out_hw[0], 1)), max(1, in_hw[1] // max(out_hw[1], 1)))
    stride = _pair(getattr(mod, "stride", None) or k[0]) if hasattr(mod, "stride") else k
    return LayerSpec(name, "pool", c, c, kernel=k, stride=stride, in_hw=in_hw, out_hw=out_hw, op=op)


def _find_adds(model: nn.Module, input_shape) -> list[LayerSpec]:
    """Element-wise residual additions, found by symbolic tracing (best effort)."""
    import operator

    try:
        from torch.fx import GraphModule, Tracer
        from torch.fx.passes.shape_prop import ShapeProp

        class _LeafTracer(Tracer):
            def is_leaf_module(self, m, qualname):  # quantized layers are leaves, not traced into
                return isinstance(m, (nn.Conv2d, nn.Linear, *_DIGITAL)) or super().is_leaf_module(m, qualname)

        gm = GraphModule(model, _LeafTracer().trace(model))
        param = next(model.parameters(), None)
        dev = param.device if param is not None else torch.device("cpu")
        ShapeProp(gm).propagate(torch.zeros((1, *input_shape), device=dev))
    except Exception:  # noqa: BLE001 - dynamic models: additions are then not listed
        return []
    out = []
    for node in gm.graph.nodes:
        if node.op == "call_function" and node.target in (operator.add, torch.add, operator.iadd):
            meta = node.meta.get("tensor_meta")
            if meta is None or len(meta.shape) != 4:
                continue
            _, c, h, w = meta.shape
            out.append(LayerSpec(node.name, "add", c, c, in_hw=(h, w), out_hw=(h, w), op="add"))
    return out
