"""ONNX export: grid-snapped weights, Round/Clip activation quantization, outputs match PyTorch."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from crossnas.cli import main
from crossnas.errors import CrossnasError
from crossnas.export import ActQuant, ExportConv2d, ExportLinear, export_module
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
    assert len(twins) == 5 and all(isinstance(t.act_quant, ActQuant) for t in twins)
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
    ops = {n.op_type for n in model.graph.node}
    assert {"Round", "Clip", "Conv", "Gemm"} <= ops or {"Round", "Clip", "Conv", "MatMul"} <= ops
    assert {p.key: p.value for p in model.metadata_props}["crossnas.design"] == "tiny"
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
