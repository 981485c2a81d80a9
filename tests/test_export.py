"""ONNX export: grid-snapped weights, Round/Clip activation quantization, outputs match PyTorch."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch

from crossnas.cli import main
from crossnas.errors import CrossnasError
from crossnas.export import QDQ, ExportConv2d, ExportLinear, export_module
from crossnas.models import get_model
from crossnas.quant import QuantConv2d, QuantLinear, quantize_model

torch.set_num_threads(1)


def _subnet_design(path):
    from crossnas.design import save_design
    from crossnas.space import BlockArch, NetworkArch, get_space_preset
    from crossnas.supernet import Supernet

    torch.manual_seed(0)
    space = get_space_preset("demo", input_size=8)
    net = Supernet.from_space(space, 1, 10, 8)
    arch = NetworkArch(blocks=(BlockArch("residual", 8, 6, 8), BlockArch("vgg_pool", 16, 4, 4),
                               BlockArch("skip")), head_bits=8)
    net.train()
    with torch.no_grad():
        for _ in range(3):
            net(torch.randn(16, 1, 8, 8), arch)
    sub = net.extract(arch).eval()
    return save_design(path, sub, hardware="mnsim-default", in_channels=1, num_classes=10, input_size=8,
                       network=arch, name="tiny")


def test_export_module_snaps_weights_and_matches_fake_quant():
    torch.manual_seed(0)
    m = quantize_model(get_model("lenet", 1, 10, 12, width_mult=0.5), 4, 3)
    x = torch.randn(16, 1, 12, 12)
    m.train()
    with torch.no_grad():
        m(x)
    m.eval()
    em = export_module(m)
    twins = [mm for mm in em.modules() if isinstance(mm, ExportConv2d | ExportLinear)]
    assert len(twins) == 5 and all(isinstance(t.act_quant, QDQ) for t in twins)
    for t in twins:  # 4-bit signed grid: at most 15 distinct values, integer multiples of one step
        vals = torch.unique(t.weight)
        assert len(vals) <= 15
        step = t.weight.abs().max() / 7
        torch.testing.assert_close(t.weight / step, torch.round(t.weight / step))
    assert twins[0].act_quant.lo == -3 and twins[1].act_quant.lo == 0  # signed first input only
    torch.testing.assert_close(em(x), m(x), rtol=0, atol=1e-6)
    # a copy: the original keeps its fake quantizers, the export form has none left
    assert sum(isinstance(mm, QuantConv2d | QuantLinear) for mm in m.modules()) == 5
    assert not any(isinstance(mm, QuantConv2d | QuantLinear) for mm in em.modules())


def test_cli_export_onnx_matches_pytorch(tmp_path, capsys):
    onnx = pytest.importorskip("onnx")
    from onnx.reference import ReferenceEvaluator

    from crossnas.design import load_design

    d = _subnet_design(tmp_path / "design")
    out = tmp_path / "net.onnx"
    assert main(["export", str(d), "--onnx", str(out)]) == 0
    assert str(out) in capsys.readouterr().out
    model = onnx.load(out)
    onnx.checker.check_model(model, full_check=True)
    ops = [n.op_type for n in model.graph.node]
    assert {"QuantizeLinear", "DequantizeLinear", "Conv"} <= set(ops) and "Round" not in ops
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["crossnas.design"] == "tiny"
    assert json.loads(meta["crossnas.hardware"])["crossbar"]["rows"] == 256  # the full configuration
    module = load_design(d).module
    ref = ReferenceEvaluator(model)
    for n in (1, 4):  # the batch dimension is dynamic
        x = torch.randn(n, 1, 8, 8, generator=torch.Generator().manual_seed(n))
        got = ref.run(None, {"input": x.numpy()})[0]
        with torch.no_grad():
            want = module(x).numpy()
        assert got.shape == (n, 10)
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-4)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_export_errors(tmp_path, monkeypatch, capsys):
    assert main(["export", str(tmp_path / "none"), "--onnx", str(tmp_path / "x.onnx")]) == 2
    assert "design.json: not found" in capsys.readouterr().err
    from crossnas.export import export_onnx

    monkeypatch.setitem(sys.modules, "onnxscript", None)  # as if the extra were not installed
    with pytest.raises(CrossnasError, match="'onnx' extra"):
        export_onnx(tmp_path / "none", tmp_path / "x.onnx")
    assert not (tmp_path / "x.onnx").exists()


def _baseline_design(path, bits: int):
    from crossnas.design import save_design

    torch.manual_seed(0)
    m = quantize_model(get_model("lenet", 1, 10, 12, width_mult=0.5), bits, bits)
    m.train()
    with torch.no_grad():
        m(torch.randn(32, 1, 12, 12))
    return save_design(path, m.eval(), hardware="mnsim-default", in_channels=1, num_classes=10,
                       input_size=12, model={"name": "lenet", "kwargs": {"width_mult": 0.5},
                                             "weight_bits": bits, "act_bits": bits})


def _zero_point_types(model) -> list[str]:
    """ONNX element type names of every QuantizeLinear's zero point (an initializer or a Constant)."""
    import onnx

    consts = {i.name: i.data_type for i in model.graph.initializer}
    for n in model.graph.node:
        if n.op_type == "Constant":
            consts[n.output[0]] = n.attribute[0].t.data_type
    return [onnx.TensorProto.DataType.Name(consts[n.input[2]]) for n in model.graph.node
            if n.op_type == "QuantizeLinear"]


@pytest.mark.parametrize("bits, opset, types, note", [
    (4, None, {"INT8", "UINT8"}, False),    # int8 up to 8 bits, at the exporter's default opset
    (12, None, {"INT16", "UINT16"}, False),  # 9-16 bits: int16 at opset 21
    (12, 18, set(), True),                   # ... below opset 21: the float form, and a note
    (20, None, set(), True),                 # beyond 16 bits: no integer type at any opset
])
def test_onnx_qdq_round_trip_through_onnxruntime(tmp_path, bits, opset, types, note):
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from crossnas.design import load_design
    from crossnas.export import export_onnx

    d = _baseline_design(tmp_path / "d", bits)
    out = export_onnx(d, tmp_path / "net.onnx", opset=opset)
    model = onnx.load(out)
    ops = [n.op_type for n in model.graph.node]
    meta = {p.key: p.value for p in model.metadata_props}
    table = json.loads(meta["crossnas.quantization"])
    assert len(table) == 5 and all(r["weight_bits"] == r["act_bits"] == bits for r in table)
    if types:  # one Q/DQ pair per weight and per input quantizer, at the type the table names
        assert ops.count("QuantizeLinear") == ops.count("DequantizeLinear") == 10 and "Round" not in ops
        assert set(_zero_point_types(model)) == types
        assert model.opset_import[0].version >= (21 if bits > 8 else 10)
        assert "crossnas.quantization_note" not in meta
    else:
        # the input quantizers as Div/Round/Clip/Mul; the weights' are folded into grid-snapped constants
        assert "QuantizeLinear" not in ops and ops.count("Round") == 5
        assert f"{bits} bits" in meta["crossnas.quantization_note"]
    assert json.loads(meta["crossnas.hardware"]) == load_design(d).hardware.model_dump(mode="json")
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    x = torch.randn(64, 1, 12, 12, generator=torch.Generator().manual_seed(3))
    got = sess.run(None, {"input": x.numpy()})[0]
    with torch.no_grad():
        want = load_design(d).module(x).numpy()
    np.testing.assert_array_equal(got.argmax(1), want.argmax(1))  # the same predictions
    # logits to a code step: onnxruntime divides by the scale with its own float rounding, so an input
    # lying on a code boundary may land one step over (about 1e-3 at 12 bits)
    np.testing.assert_allclose(got, want, rtol=0, atol=5e-3)
