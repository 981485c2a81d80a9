"""quantize_model, baseline width scaling, design save/load."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from crossnas.errors import CrossnasError
from crossnas.models import get_model
from crossnas.quant import QuantConv2d, QuantLinear, quantize_model

torch.set_num_threads(1)


def _calibrate(model: nn.Module, x: torch.Tensor) -> nn.Module:
    model.train()
    with torch.no_grad():
        model(x)
    return model.eval()


def _matrix_names(m: nn.Module) -> list[str]:
    return [n for n, mm in m.named_modules() if isinstance(mm, nn.Conv2d | nn.Linear)]


def test_quantize_model_matches_hand_made_quant_layers():
    torch.manual_seed(0)
    conv = nn.Conv2d(2, 5, 3, stride=2, padding=1, dilation=1, groups=1)
    fc = nn.Linear(5 * 4 * 4, 3)
    model = nn.Sequential(conv, nn.ReLU(), nn.Flatten(), fc)
    hand_c = QuantConv2d(2, 5, 3, stride=2, padding=1, weight_bits=4, act_bits=3, act_signed=True)
    hand_f = QuantLinear(80, 3, weight_bits=4, act_bits=3)
    hand_c.load_state_dict(conv.state_dict(), strict=False)
    hand_f.load_state_dict(fc.state_dict(), strict=False)
    hand = nn.Sequential(hand_c, nn.ReLU(), nn.Flatten(), hand_f)
    q = quantize_model(model, 4, 3)
    assert isinstance(q[0], QuantConv2d) and isinstance(q[3], QuantLinear)
    assert q[0].act_signed and not q[3].act_signed
    assert (q[0].stride, q[0].padding) == ((2, 2), (1, 1))
    x = torch.randn(8, 2, 8, 8)
    _calibrate(q, x)
    _calibrate(hand, x)
    torch.testing.assert_close(q(x), hand(x), rtol=0, atol=0)
    # quantization is real: a float copy differs
    ref = nn.Sequential(nn.Conv2d(2, 5, 3, stride=2, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(80, 3))
    ref.load_state_dict({k: v for k, v in q.state_dict().items() if "act_range" not in k})
    assert not torch.allclose(ref(x), q(x))


def test_quantize_model_per_layer_bits_and_errors():
    m = get_model("lenet", 1, 10, 12, width_mult=0.5)
    bits = dict(zip(_matrix_names(m), [(8, 8), (4, 4), (6, 5), (6, 5), (8, 8)], strict=True))
    m = quantize_model(m, bits)
    assert [(mm.weight_bits, mm.act_bits) for mm in m.modules() if isinstance(mm, QuantLinear | QuantConv2d)
            ] == list(bits.values())
    with pytest.raises(CrossnasError, match="unknown"):
        quantize_model(get_model("lenet", 1, 10, 12), {**bits, "nope": (8, 8)})
    with pytest.raises(CrossnasError, match="missing"):
        quantize_model(get_model("lenet", 1, 10, 12), {"0": (8, 8)})
    with pytest.raises(CrossnasError, match="weight_bits"):
        quantize_model(get_model("lenet", 1, 10, 12), 1, 8)
    with pytest.raises(CrossnasError, match="first layer"):
        quantize_model(get_model("lenet", 1, 10, 12), 8, 1)


def test_width_mult_scales_baselines():
    def widths(m):
        return [mm.out_channels if isinstance(mm, nn.Conv2d) else mm.out_features
                for mm in m.modules() if isinstance(mm, nn.Conv2d | nn.Linear)]

    assert widths(get_model("vgg8", 3, 10, 32)) == [128, 128, 256, 256, 512, 512, 1024, 10]
    assert widths(get_model("vgg8", 3, 10, 32, width_mult=0.25)) == [32, 32, 64, 64, 128, 128, 256, 10]
    assert widths(get_model("lenet", 1, 10, 28, width_mult=0.5)) == [3, 8, 60, 42, 10]
    assert widths(get_model("lenet", 1, 10, 28, width_mult=0.01)) == [1, 1, 1, 1, 10]
    with pytest.raises(CrossnasError, match="width_mult"):
        get_model("resnet18-cifar", 3, 10, 32, width_mult=0.5)


# --- designs ------------------------------------------------------------------------------------------
def _demo_subnet(seed=0):
    import numpy as np

    from crossnas.space import get_space_preset
    from crossnas.supernet import Supernet

    torch.manual_seed(seed)
    space = get_space_preset("demo", input_size=8)
    net = Supernet.from_space(space, 1, 10, 8)
    rng = np.random.default_rng(seed)
    cand = space.to_arch(space.sample(rng, 1)[0])
    net.train()
    with torch.no_grad():
        for _ in range(3):  # act ranges and BN stats away from their initial values
            net(torch.randn(16, 1, 8, 8), cand.network)
    return net.extract(cand.network).eval(), cand


def _hw(overlay=None):
    from crossnas.hardware import load_hardware

    return load_hardware("mnsim-default", overlay)


def test_subnet_design_roundtrip_is_bit_identical(tmp_path):
    from crossnas import load_design
    from crossnas.design import save_design

    sub, cand = _demo_subnet()
    hw = _hw(cand.hardware)
    out = save_design(tmp_path / "d1", sub, hardware=hw, in_channels=1, num_classes=10, input_size=8,
                      network=cand.network, metrics={"accuracy": 0.5, "edp": float("inf")}, name="best")
    assert sorted(p.name for p in out.iterdir()) == ["design.json", "hardware.yaml", "weights.pt"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp folder left
    d = load_design(out)
    assert d.network == cand.network and d.hardware == hw and d.name == "best"
    assert d.metrics["accuracy"] == 0.5 and d.input_shape == (1, 8, 8)
    assert not d.module.training
    x = torch.randn(5, 1, 8, 8)
    assert torch.equal(d.module(x), sub(x))
    assert [(n, type(m)) for n, m in d.module.named_modules()] == [
        (n, type(m)) for n, m in sub.named_modules()]


def _shapes(m: nn.Module) -> dict:
    return {k: v.shape for k, v in m.state_dict().items()}


def test_build_subnet_matches_extract_structure():
    from crossnas.supernet.model import build_subnet

    sub, cand = _demo_subnet(1)
    fresh = build_subnet(cand.network, 1, 10, 8, head_hidden=(32,))
    assert _shapes(fresh) == _shapes(sub)
    fresh.load_state_dict(sub.state_dict())
    fresh.eval()
    x = torch.randn(3, 1, 8, 8)
    assert torch.equal(fresh(x), sub(x))


@pytest.mark.parametrize("name,kwargs,size", [("lenet", {"width_mult": 0.5}, 12),
                                               ("vgg8", {"width_mult": 0.0625}, 8)])
def test_baseline_design_roundtrip(tmp_path, name, kwargs, size):
    from crossnas.design import load_design, save_design

    torch.manual_seed(0)
    m = quantize_model(get_model(name, 1, 10, size, **kwargs), 6, 5)
    x = torch.randn(8, 1, size, size)
    _calibrate(m, x)
    spec = {"name": name, "kwargs": kwargs, "weight_bits": 6, "act_bits": 5}
    save_design(tmp_path / "b", m, hardware="isaac-like", in_channels=1, num_classes=10, input_size=size,
                model=spec)
    d = load_design(tmp_path / "b")
    assert d.network is None and d.meta["model"]["name"] == name
    assert torch.equal(d.module(x), m(x))
    bits = {(mm.weight_bits, mm.act_bits) for mm in d.module.modules()
            if isinstance(mm, QuantConv2d | QuantLinear)}
    assert bits == {(6, 5)}
    # the description is checked before writing: wrong bits or wrong width are refused
    with pytest.raises(CrossnasError, match="act_bits"):
        save_design(tmp_path / "c", m, hardware="isaac-like", in_channels=1, num_classes=10, input_size=size,
                    model={**spec, "act_bits": 8})
    with pytest.raises(CrossnasError, match="do not match"):
        save_design(tmp_path / "c", m, hardware="isaac-like", in_channels=1, num_classes=10, input_size=size,
                    model={**spec, "kwargs": {}})
    assert not (tmp_path / "c").exists()


def test_per_layer_baseline_design(tmp_path):
    from crossnas.design import load_design, save_design

    m = get_model("lenet", 1, 10, 12, width_mult=0.25)
    bits = dict(zip(_matrix_names(m), [(8, 8), (4, 4), (6, 5), (6, 5), (8, 8)], strict=True))
    m = quantize_model(m, bits)
    save_design(tmp_path / "p", m, hardware="mnsim-default", in_channels=1, num_classes=10, input_size=12,
                model={"name": "lenet", "kwargs": {"width_mult": 0.25}, "weight_bits": bits})
    got = [(mm.weight_bits, mm.act_bits) for mm in load_design(tmp_path / "p").module.modules()
           if isinstance(mm, QuantConv2d | QuantLinear)]
    assert got == list(bits.values())


def test_save_replaces_existing_design_and_refuses_other_folders(tmp_path):
    from crossnas.design import load_design, save_design

    sub, cand = _demo_subnet()
    kw = {"hardware": _hw(), "in_channels": 1, "num_classes": 10, "input_size": 8, "network": cand.network}
    save_design(tmp_path / "d", sub, metrics={"v": 1}, **kw)
    save_design(tmp_path / "d", sub, metrics={"v": 2}, **kw)
    assert load_design(tmp_path / "d").metrics == {"v": 2}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d"]
    other = tmp_path / "notes"
    other.mkdir()
    (other / "keep.txt").write_text("x")
    with pytest.raises(CrossnasError, match="not a design folder"):
        save_design(other, sub, **kw)
    assert (other / "keep.txt").exists()


def test_load_errors_name_the_file(tmp_path):
    import json

    from crossnas.design import load_design, save_design

    with pytest.raises(CrossnasError, match="design.json: not found"):
        load_design(tmp_path / "missing")
    sub, cand = _demo_subnet()
    d = save_design(tmp_path / "d", sub, hardware=_hw(), in_channels=1, num_classes=10, input_size=8,
                    network=cand.network)
    (d / "weights.pt").write_bytes(b"garbage")
    with pytest.raises(CrossnasError, match="weights.pt: cannot read"):
        load_design(d)
    state = sub.state_dict()
    state["head.fc1.weight"] = state["head.fc1.weight"][:, :-1]  # weights of another network
    torch.save(state, d / "weights.pt")
    with pytest.raises(CrossnasError, match="weights.pt: weights do not match.*head.fc1.weight"):
        load_design(d)
    (d / "hardware.yaml").unlink()
    with pytest.raises(CrossnasError, match="hardware.yaml: not found"):
        load_design(d)
    (d / "design.json").write_text("{not json")
    with pytest.raises(CrossnasError, match="design.json: not valid JSON"):
        load_design(d)
    meta = {"format": "crossnas-design/1", "in_channels": 1, "num_classes": 10, "input_size": 8}
    (d / "design.json").write_text(json.dumps({**meta, "model": {"name": "nope"}}))
    with pytest.raises(CrossnasError, match="design.json: model: .*nope"):
        load_design(d)
    (d / "design.json").write_text(json.dumps({**meta, "network": {"blocks": [{"kind": "conv9"}]}}))
    with pytest.raises(CrossnasError, match="design.json: network/head: invalid"):
        load_design(d)
    (d / "design.json").write_text('{"format": "other/9"}')
    with pytest.raises(CrossnasError, match="design.json: format"):
        load_design(d)


def test_simulate_cli_evaluates_a_saved_design(tmp_path, capsys):
    import json

    from crossnas.cli import main
    from crossnas.design import save_design

    sub, cand = _demo_subnet()
    hw = _hw({**cand.hardware, "device.variation": 0.3, "name": "design-hw"})
    d = save_design(tmp_path / "d", sub, hardware=hw, in_channels=1, num_classes=10, input_size=8,
                    network=cand.network)
    out = tmp_path / "sim.json"
    data = "synthetic:1x8x8:10:150"
    assert main(["simulate", "--design", str(d), "--data", data, "--chips", "2", "--fidelity", "fast",
                 "--calib-batches", "1", "--json", str(out), "--device", "cpu"]) == 0
    r = json.loads(out.read_text())
    assert r["design"] == str(d) and r["chips"] == 2 and len(r["per_chip"]) == 2
    assert r["hardware"] == "design-hw" and 0 <= r["accuracy_digital"] <= 1  # the design's hardware.yaml
    assert "PIM accuracy" in capsys.readouterr().out
    # --set overrides apply on top of it: without device effects every chip is the digital result
    assert main(["simulate", "--design", str(d), "--data", data, "--chips", "2", "--fidelity", "fast",
                 "--calib-batches", "1", "--json", str(out), "--device", "cpu", "--set", "device.variation=0",
                 "--set", "adc.bits=12"]) == 0
    r0 = json.loads(out.read_text())
    assert r0["per_chip"] == [r0["accuracy_digital"]] * 2 and r0["accuracy_digital"] == r["accuracy_digital"]
    # neither source, both sources, or data of another shape: one-line errors naming the flag
    assert main(["simulate", "--data", data]) == 2
    assert "--model, --weights, --hardware: required (or give --design DIR)" in capsys.readouterr().err
    assert main(["simulate", "--design", str(d), "--model", "lenet", "--data", data]) == 2
    assert "either --design or --model" in capsys.readouterr().err
    assert main(["simulate", "--design", str(d), "--data", "synthetic:3x8x8:10:60"]) == 2
    assert "do not match the design's" in capsys.readouterr().err
