"""ONNX export of a design's digital network.

Weights are snapped to their quantization grid (the dequantised values q * scale are stored) and each
quantized layer's input quantization becomes plain arithmetic, x / scale -> Round -> Clip -> * scale, so
any ONNX runtime computes what the fake-quantized PyTorch module computes in eval mode. Batch norm is
kept or folded into the convolution by the exporter's optimiser. Needs the `onnx` extra (onnx, onnxscript).
"""

from __future__ import annotations

import contextlib
import copy
import logging
import os
import uuid
import warnings
from pathlib import Path

import torch
from torch import nn

from crossnas.design import Design, load_design
from crossnas.errors import CrossnasError
from crossnas.quant import QuantConv2d, QuantLinear, qmax, quantize_int, weight_range


class ActQuant(nn.Module):
    """Export form of an input fake-quantizer: clamp(round(x / scale), lo, hi) * scale."""

    def __init__(self, bits: int, act_range: torch.Tensor, signed: bool):
        super().__init__()
        m = qmax(bits, signed)
        self.lo, self.hi = (-m if signed else 0), m
        self.register_buffer("scale", act_range.detach().clamp_min(1e-12) / m)

    def forward(self, x):
        # lo = 0 also does the ReLU that the unsigned fake quantizer applies first
        return torch.clamp(torch.round(x / self.scale), self.lo, self.hi) * self.scale


def _snapped(w: torch.Tensor, bits: int | None) -> torch.Tensor:
    if bits is None:
        return w.detach().clone()
    q, scale = quantize_int(w.detach(), bits, weight_range(w), True)
    return q * scale


class ExportConv2d(nn.Conv2d):
    """Plain convolution on grid-snapped weights, after an optional ActQuant of its input."""

    def forward(self, x):
        return self._conv_forward(self.act_quant(x), self.weight, self.bias)


class ExportLinear(nn.Linear):
    """Plain linear layer on grid-snapped weights, after an optional ActQuant of its input."""

    def forward(self, x):
        return nn.functional.linear(self.act_quant(x), self.weight, self.bias)


@torch.no_grad()
def _export_twin(layer: QuantConv2d | QuantLinear) -> nn.Module:
    dd = {"device": layer.weight.device, "dtype": layer.weight.dtype}
    if isinstance(layer, QuantConv2d):
        new = ExportConv2d(layer.in_channels, layer.out_channels, layer.kernel_size, stride=layer.stride,
                           padding=layer.padding, dilation=layer.dilation, groups=layer.groups,
                           bias=layer.bias is not None, padding_mode=layer.padding_mode, **dd)
    else:
        new = ExportLinear(layer.in_features, layer.out_features, bias=layer.bias is not None, **dd)
    new.weight.copy_(_snapped(layer.weight, layer.weight_bits))
    if layer.bias is not None:
        new.bias.copy_(layer.bias)
    new.act_quant = (nn.Identity() if layer.act_bits is None
                     else ActQuant(layer.act_bits, layer.act_range, bool(layer.act_signed)))
    return new


def export_module(module: nn.Module) -> nn.Module:
    """An eval-mode copy of `module` whose quantized layers are their export forms (see module doc)."""
    out = copy.deepcopy(module).eval()
    if isinstance(out, QuantConv2d | QuantLinear):
        return _export_twin(out).eval()
    for name, mod in list(out.named_modules()):
        if isinstance(mod, QuantConv2d | QuantLinear):
            parent_name, _, attr = name.rpartition(".")
            parent = out.get_submodule(parent_name) if parent_name else out
            setattr(parent, attr, _export_twin(mod))
    return out.eval()


def _require_onnx():
    try:
        import onnx
        import onnxscript  # noqa: F401 - the torch.export-based exporter needs it
    except ImportError as e:
        raise CrossnasError(f"ONNX export needs the 'onnx' extra (pip install 'crossnas[onnx]'); "
                            f"missing module {e.name!r}") from None
    return onnx


@contextlib.contextmanager
def _quiet_exporter():
    """The exporter logs about optional torchvision ops and its own deprecations; not the user's concern."""
    log = logging.getLogger("torch.onnx")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            yield
    finally:
        log.setLevel(level)


MIN_OPSET = 18  # torch.onnx.export(dynamo=True) targets opset 18 and later (torch 2.5+ documentation)


def export_onnx(design: Design | str | os.PathLike, out_path: str | os.PathLike, *,
                opset: int | None = None) -> Path:
    """Write the design's digital network (a design folder or a loaded Design) to `out_path` as ONNX with
    input `input` (N, C, H, W; N dynamic) and output `logits`. Checked with onnx.checker; atomic."""
    onnx = _require_onnx()
    out_path = Path(out_path)
    if opset is not None and not MIN_OPSET <= opset <= onnx.defs.onnx_opset_version():
        raise CrossnasError(f"--opset: expected {MIN_OPSET}..{onnx.defs.onnx_opset_version()} (the torch "
                            f"exporter writes opset {MIN_OPSET} or later), got {opset}")
    if out_path.is_dir():
        raise CrossnasError(f"{out_path}: is a folder (give a file name for --onnx)")
    d = design if isinstance(design, Design) else load_design(design)
    module = export_module(d.module).cpu().float()
    c, h, w = d.input_shape
    example = torch.zeros(2, c, h, w)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(f".{out_path.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        with _quiet_exporter():
            prog = torch.onnx.export(
                module, (example,), dynamo=True, input_names=["input"], output_names=["logits"],
                dynamic_shapes=({0: torch.export.Dim("batch")},), opset_version=opset, verbose=False,
                optimize=True)
        proto = prog.model_proto
        got = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)
        if opset is not None and got != opset:
            raise CrossnasError(f"--opset: the exporter wrote opset {got}, not {opset} (pick another opset)")
        meta = {"crossnas.design": d.name, "crossnas.format": str(d.meta.get("format", "")),
                "crossnas.hardware": d.hardware.name}
        for k, v in meta.items():
            entry = proto.metadata_props.add()
            entry.key, entry.value = k, v
        onnx.save(proto, tmp)
        onnx.checker.check_model(str(tmp), full_check=True)
        os.replace(tmp, out_path)
    except CrossnasError:
        raise
    except Exception as e:  # noqa: BLE001 - exporter failures come in many types
        raise CrossnasError(f"ONNX export of {d.path or d.name}: {e.__class__.__name__}: {str(e)[:300]}"
                            ) from e
    finally:
        tmp.unlink(missing_ok=True)
    return out_path
