"""ONNX export of a design's digital network, with its quantization as QuantizeLinear/DequantizeLinear.

Weights are snapped to their quantization grid (the dequantised values q * scale are stored) and pass a
QuantizeLinear -> DequantizeLinear pair at the layer's bits; each quantized layer's input becomes
Clip(lo * scale, hi * scale) -> QuantizeLinear -> DequantizeLinear (the Clip keeps a b-bit grid inside the
wider ONNX type), so integer toolchains see the bits and any ONNX runtime computes what the fake-quantized
PyTorch module computes in eval mode. Up to 8 bits: int8/uint8; 9-16 bits: int16/uint16 at opset 21; where
no type holds the bits, the float form x / scale -> Round -> Clip -> * scale and a metadata note. Batch
norm stays a node of its own (folded, the weights would leave their grid). Needs the `onnx` extra.
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

# bits -> ONNX integer type of QuantizeLinear / DequantizeLinear and the first opset that allows it
# (ONNX operator docs: int8/uint8 since opset 10, int16/uint16 since opset 21); wider: float form
QDQ_TYPES = ((8, "int8", "uint8", 10), (16, "int16", "uint16", 21))
DEFAULT_OPSET_8BIT = None  # the exporter's own default when every quantizer fits int8
QDQ_OPSET = 21


def qdq_type(bits: int, signed: bool, opset: int | None) -> str | None:
    """The ONNX type that carries `bits` at `opset` (None: the default opset of an export), or None when
    the quantizer must be written in float form (Div/Round/Clip/Mul)."""
    for top, s_type, u_type, first in QDQ_TYPES:
        if bits <= top:
            return (s_type if signed else u_type) if opset is None or opset >= first else None
    return None


@torch.library.custom_op("crossnas::qdq", mutates_args=())
def qdq(x: torch.Tensor, scale: torch.Tensor, lo: int, hi: int, bits: int) -> torch.Tensor:
    """clamp(round(x / scale), lo, hi) * scale; exported as Clip -> QuantizeLinear -> DequantizeLinear."""
    return torch.clamp(torch.round(x / scale), lo, hi) * scale


@qdq.register_fake
def _qdq_fake(x, scale, lo, hi, bits):
    return torch.empty_like(x)


def _qdq_onnx(x, scale, lo: int, hi: int, bits: int):
    """ONNX form of `qdq`: the Clip keeps the design's grid (QuantizeLinear saturates to the type's range)."""
    import numpy as np
    from onnxscript import ir
    from onnxscript import opset18 as op

    dtype = {"int8": np.int8, "uint8": np.uint8, "int16": np.int16, "uint16": np.uint16}[
        qdq_type(bits, lo < 0, None)]
    zero = op.Constant(value=ir.tensor(np.array(0, dtype=dtype)))
    clipped = op.Clip(x, op.Mul(scale, float(lo)), op.Mul(scale, float(hi)))
    return op.DequantizeLinear(op.QuantizeLinear(clipped, scale, zero), scale, zero)


class QDQ(nn.Module):
    """A quantizer on a grid of `bits` with codes lo..hi and one scale, exported as a Q/DQ pair."""

    def __init__(self, bits: int, scale: torch.Tensor, signed: bool, onnx_type: str | None):
        super().__init__()
        m = qmax(bits, signed)
        self.bits, self.lo, self.hi, self.onnx_type = bits, (-m if signed else 0), m, onnx_type
        self.register_buffer("scale", scale.detach().reshape(()).clamp_min(1e-12).float())

    def forward(self, x):
        if self.onnx_type is None:  # float form: no ONNX type holds these bits at this opset
            return torch.clamp(torch.round(x / self.scale), self.lo, self.hi) * self.scale
        return torch.ops.crossnas.qdq(x, self.scale, self.lo, self.hi, self.bits)


def act_quant(bits: int, act_range: torch.Tensor, signed: bool, opset: int | None = None) -> QDQ:
    """Export form of an input fake-quantizer (lo = 0 for unsigned inputs is also the ReLU)."""
    return QDQ(bits, act_range.detach() / qmax(bits, signed), signed, qdq_type(bits, signed, opset))


class ExportConv2d(nn.Conv2d):
    """Convolution on grid-snapped weights behind a weight Q/DQ, after an optional input Q/DQ."""

    def forward(self, x):
        return self._conv_forward(self.act_quant(x), self.weight_quant(self.weight), self.bias)


class ExportLinear(nn.Linear):
    """Linear layer on grid-snapped weights behind a weight Q/DQ, after an optional input Q/DQ."""

    def forward(self, x):
        return nn.functional.linear(self.act_quant(x), self.weight_quant(self.weight), self.bias)


@torch.no_grad()
def _export_twin(layer: QuantConv2d | QuantLinear, opset: int | None) -> nn.Module:
    dd = {"device": layer.weight.device, "dtype": layer.weight.dtype}
    if isinstance(layer, QuantConv2d):
        new = ExportConv2d(layer.in_channels, layer.out_channels, layer.kernel_size, stride=layer.stride,
                           padding=layer.padding, dilation=layer.dilation, groups=layer.groups,
                           bias=layer.bias is not None, padding_mode=layer.padding_mode, **dd)
    else:
        new = ExportLinear(layer.in_features, layer.out_features, bias=layer.bias is not None, **dd)
    wb = layer.weight_bits
    if wb is None:
        new.weight.copy_(layer.weight)
        new.weight_quant = nn.Identity()
    else:
        q, scale = quantize_int(layer.weight.detach(), wb, weight_range(layer.weight), True)
        new.weight.copy_(q * scale)  # snapped: the Q/DQ pair reproduces it exactly
        new.weight_quant = QDQ(wb, torch.as_tensor(scale), True, qdq_type(wb, True, opset))
    if layer.bias is not None:
        new.bias.copy_(layer.bias)
    new.act_quant = (nn.Identity() if layer.act_bits is None
                     else act_quant(layer.act_bits, layer.act_range, bool(layer.act_signed), opset))
    return new


def export_module(module: nn.Module, opset: int | None = None) -> nn.Module:
    """An eval-mode copy of `module` whose quantized layers are their export forms (see module doc)."""
    out = copy.deepcopy(module).eval()
    if isinstance(out, QuantConv2d | QuantLinear):
        return _export_twin(out, opset).eval()
    for name, mod in list(out.named_modules()):
        if isinstance(mod, QuantConv2d | QuantLinear):
            parent_name, _, attr = name.rpartition(".")
            parent = out.get_submodule(parent_name) if parent_name else out
            setattr(parent, attr, _export_twin(mod, opset))
    return out.eval()


def quantization_table(module: nn.Module) -> list[dict]:
    """Per exported layer: bits and the ONNX type of its weight and input quantizers (None: float form)."""
    rows = []
    for name, m in module.named_modules():
        if isinstance(m, ExportConv2d | ExportLinear):
            wq, aq = m.weight_quant, m.act_quant
            rows.append({"layer": name, "weight_bits": getattr(wq, "bits", None),
                         "weight_type": getattr(wq, "onnx_type", None), "act_bits": getattr(aq, "bits", None),
                         "act_type": getattr(aq, "onnx_type", None)})
    return rows


def choose_opset(module: nn.Module) -> int | None:
    """The lowest opset whose integer types hold every quantizer of the design (see QDQ_TYPES)."""
    bits = [m.weight_bits for m in module.modules() if isinstance(m, QuantConv2d | QuantLinear)
            and m.weight_bits is not None]
    bits += [m.act_bits for m in module.modules() if isinstance(m, QuantConv2d | QuantLinear)
             and m.act_bits is not None]
    return QDQ_OPSET if any(8 < b <= 16 for b in bits) else DEFAULT_OPSET_8BIT


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
    input `input` (N, C, H, W; N dynamic) and output `logits`, quantizers as QuantizeLinear /
    DequantizeLinear pairs (`QDQ_TYPES`; `opset` None: the lowest that holds every quantizer) and the full
    hardware configuration as JSON metadata. Checked with onnx.checker and, when onnxruntime is installed,
    by predictions equal to the PyTorch module's; atomic (nothing is written when a check fails)."""
    import json

    onnx = _require_onnx()
    out_path = Path(out_path)
    asked = opset
    if opset is not None and not MIN_OPSET <= opset <= onnx.defs.onnx_opset_version():
        raise CrossnasError(f"--opset: expected {MIN_OPSET}..{onnx.defs.onnx_opset_version()} (the torch "
                            f"exporter writes opset {MIN_OPSET} or later), got {opset}")
    if out_path.is_dir():
        raise CrossnasError(f"{out_path}: is a folder (give a file name for --onnx)")
    d = design if isinstance(design, Design) else load_design(design)
    opset = choose_opset(d.module) if opset is None else opset
    module = export_module(d.module, opset).cpu().float()
    table = quantization_table(module)
    c, h, w = d.input_shape
    example = torch.zeros(2, c, h, w)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(f".{out_path.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        with _quiet_exporter():
            prog = torch.onnx.export(
                module, (example,), dynamo=True, input_names=["input"], output_names=["logits"],
                dynamic_shapes=({0: torch.export.Dim("batch")},), opset_version=opset, verbose=False,
                optimize=True, custom_translation_table={torch.ops.crossnas.qdq.default: _qdq_onnx})
        proto = prog.model_proto
        got = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)
        if asked is not None and got != asked:
            raise CrossnasError(f"--opset: the exporter wrote opset {got}, not {asked} (pick another opset)")
        meta = {"crossnas.design": d.name, "crossnas.format": str(d.meta.get("format", "")),
                "crossnas.hardware": json.dumps(d.hardware.model_dump(mode="json"), sort_keys=True),
                "crossnas.hardware_name": d.hardware.name,
                "crossnas.quantization": json.dumps(table)}
        note = _float_form_note(table, opset)
        if note:
            meta["crossnas.quantization_note"] = note
        for k, v in meta.items():
            entry = proto.metadata_props.add()
            entry.key, entry.value = k, v
        onnx.save(proto, tmp)
        onnx.checker.check_model(str(tmp), full_check=True)
        _check_runtime(tmp, d.module, (c, h, w))
        os.replace(tmp, out_path)
    except CrossnasError:
        raise
    except Exception as e:  # noqa: BLE001 - exporter failures come in many types
        raise CrossnasError(f"ONNX export of {d.path or d.name}: {e.__class__.__name__}: {str(e)[:300]}"
                            ) from e
    finally:
        tmp.unlink(missing_ok=True)
    return out_path


def _float_form_note(table: list[dict], opset: int | None) -> str:
    """Which quantizers no ONNX integer type holds at `opset` (written as Div/Round/Clip/Mul instead)."""
    wide = sorted({f"{r['layer']} ({k} {r[k + '_bits']} bits)" for r in table for k in ("weight", "act")
                   if r[f"{k}_bits"] is not None and r[f"{k}_type"] is None})
    if not wide:
        return ""
    return (f"float form (Div/Round/Clip/Mul, no integer type) for {', '.join(wide)}: QuantizeLinear "
            f"holds up to 8 bits as int8 and 9-16 bits as int16 from opset 21 (this file: opset "
            f"{opset or 'default'})")


def _check_runtime(path: Path, module: nn.Module, shape: tuple[int, int, int]) -> None:
    """With onnxruntime installed: the file's predictions on a fixed random batch equal the module's."""
    try:
        import onnxruntime as ort
    except ImportError:
        return
    x = torch.randn(16, *shape, generator=torch.Generator().manual_seed(0))
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = sess.run(None, {"input": x.numpy()})[0]
    with torch.no_grad():
        want = module.cpu().eval()(x).numpy()
    if not (got.argmax(1) == want.argmax(1)).all():
        raise CrossnasError(f"ONNX export: onnxruntime's predictions differ from the PyTorch design's on "
                            f"{int((got.argmax(1) != want.argmax(1)).sum())} of 16 inputs; file not written")
