"""Models from the user's own file (a class or a factory, called by keyword), non-square inputs through
the cost model and the simulator, and the README example: own npz, model file and hardware overlay."""

from __future__ import annotations

import json
import textwrap

import numpy as np
import pytest
import torch

from crossnas.cli import main
from crossnas.design import load_design, save_design
from crossnas.errors import CrossnasError
from crossnas.models import get_model
from crossnas.quant import quantize_model

torch.set_num_threads(1)

MYNET = textwrap.dedent("""
    from torch import nn

    class MyNet(nn.Module):
        def __init__(self, in_channels, num_classes, width=4):
            super().__init__()
            self.conv = nn.Conv2d(in_channels, width, 3, padding=1)
            self.pool = nn.AdaptiveAvgPool2d(2)
            self.fc = nn.Linear(4 * width, num_classes)

        def forward(self, x):
            return self.fc(self.pool(self.conv(x).relu()).flatten(1))

    def make(num_classes, input_size, in_channels=1, hidden=16):
        h, w = input_size if isinstance(input_size, tuple) else (input_size, input_size)
        return nn.Sequential(nn.Conv2d(in_channels, 4, 3, padding=1), nn.ReLU(), nn.Flatten(),
                             nn.Linear(4 * h * w, hidden), nn.ReLU(), nn.Linear(hidden, num_classes))

    def needs_depth(in_channels, num_classes, depth):
        return MyNet(in_channels, num_classes)

    def explodes(in_channels):
        raise ValueError("only RGB")

    def not_a_module():
        return 42
""")


@pytest.fixture
def mynet(tmp_path):
    f = tmp_path / "mynet.py"
    f.write_text(MYNET)
    return f


def test_class_and_factory_get_the_arguments_their_signature_names(mynet):
    m = get_model(f"{mynet}:MyNet", 3, 7, 32, width=6)
    assert m.conv.in_channels == 3 and m.conv.out_channels == 6 and m.fc.out_features == 7  # no size->width
    f = get_model(f"{mynet}:make", 2, 5, (6, 9), hidden=8)
    assert f[0].in_channels == 2 and f[3].in_features == 4 * 6 * 9 and f[5].out_features == 5
    assert f(torch.zeros(1, 2, 6, 9)).shape == (1, 5)
    for name, kw, expect in (("needs_depth", {}, "parameter 'depth' has no value.*--model-arg depth=VALUE"),
                             ("MyNet", {"depth": 3}, "takes no argument 'depth'"),
                             ("explodes", {}, "cannot be built for in_channels=3.*ValueError: only RGB"),
                             ("not_a_module", {}, "expected a torch.nn.Module, got int"),
                             ("absent", {}, "no callable 'absent'")):
        with pytest.raises(CrossnasError, match=expect):
            get_model(f"{mynet}:{name}", 3, 7, 32, **kw)


def test_evaluate_costs_a_user_class_and_a_non_square_input(mynet, tmp_path, capsys):
    out = tmp_path / "cost.json"
    assert main(["evaluate", "--model", f"{mynet}:MyNet", "--model-arg", "width=8", "--input", "3x32x48",
                 "--json", str(out)]) == 0
    conv = json.loads(out.read_text())["layers"][0]
    assert conv["macs"] == 8 * 27 * 32 * 48  # out channels x (C * 3 * 3) x H x W
    square = tmp_path / "sq.json"
    assert main(["evaluate", "--model", "lenet", "--input", "3x32x32", "--json", str(square)]) == 0
    assert main(["evaluate", "--model", "lenet", "--input", "3x32x48", "--json", str(out)]) == 0
    macs = [json.loads(p.read_text())["layers"][0]["macs"] for p in (square, out)]
    assert macs[1] * 2 == macs[0] * 3  # the first conv sees 1.5x the pixels
    capsys.readouterr()
    assert main(["evaluate", "--model", f"{mynet}:needs_depth", "--input", "3x8x8"]) == 2
    err = capsys.readouterr().err
    assert "parameter 'depth' has no value" in err and len(err.strip().splitlines()) == 1


def test_simulate_runs_a_non_square_model_and_design(mynet, tmp_path, capsys):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (40, 1, 8, 12), dtype=np.uint8)
    np.savez(tmp_path / "wide.npz", x=x, y=np.arange(40) % 3)
    torch.manual_seed(0)
    model = quantize_model(get_model("lenet", 1, 3, (8, 12), width_mult=0.5), 6, 6)
    with torch.no_grad():
        model.train()(torch.randn(8, 1, 8, 12))  # activation ranges
    res = tmp_path / "sim.json"
    plain = get_model("lenet", 1, 3, (8, 12), width_mult=0.5)
    torch.save(plain.state_dict(), tmp_path / "plain.pt")
    assert main(["simulate", "--model", "lenet", "--model-arg", "width_mult=0.5", "--weights",
                 str(tmp_path / "plain.pt"), "--hardware", "mnsim-default", "--data",
                 f"npz:{tmp_path / 'wide.npz'}", "--chips", "1", "--json", str(res)]) == 0
    r = json.loads(res.read_text())
    assert 0 <= r["accuracy_pim"] <= 1 and len(r["per_chip"]) == 1
    d = save_design(tmp_path / "d", model.eval(), hardware="mnsim-default", in_channels=1, num_classes=3,
                    input_size=(8, 12), model={"name": "lenet", "kwargs": {"width_mult": 0.5},
                                               "weight_bits": 6, "act_bits": 6})
    assert load_design(d).input_shape == (1, 8, 12)
    assert main(["simulate", "--design", str(d), "--data", f"npz:{tmp_path / 'wide.npz'}", "--chips",
                 "1", "--json", str(res)]) == 0
    assert json.loads(res.read_text())["accuracy_digital"] >= 0
    capsys.readouterr()


README_CONFIG = """
name: my-sensor
device: cpu
data: {{name: npz, path: {npz}, test_fraction: 0.25}}
space: {{preset: demo}}
hardware: {{preset: {hw}}}
supernet: {{epochs: 1, batch_size: 32, val_subnets: 0}}
search: {{budget: 4, pop_size: 4, val_limit: 16, bn_batches: 1, final_chips: 1}}
select: {{k: 1}}
retrain: {{epochs: 1, batch_size: 32}}
baselines: {{models: ["{model}"], epochs: 1}}
final: {{test_limit: 12, chips: 1, batch_size: 16}}
"""


def test_readme_example_own_npz_model_and_hardware_overlay(mynet, tmp_path, capsys):
    rng = np.random.default_rng(0)
    y = np.arange(80) % 2
    x = (rng.random((80, 8, 8, 1)) * 0.3 + y[:, None, None, None] * 0.5).astype(np.float32)  # NHWC floats
    np.savez(tmp_path / "mydata.npz", x=x, y=y)
    (tmp_path / "mychip.yaml").write_text("base: mnsim-default\ncrossbar: {rows: 64, cols: 64}\n")
    cfg = tmp_path / "my-sensor.yaml"
    cfg.write_text(README_CONFIG.format(npz=tmp_path / "mydata.npz", hw=tmp_path / "mychip.yaml",
                                        model=f"{mynet}:MyNet"))
    out = tmp_path / "run"
    assert main(["run", str(cfg), "--out", str(out), "--no-progress"]) == 0
    final = json.loads((out / "final.json").read_text())
    base = [e for e in final["entries"] if e["kind"] == "baseline"]
    assert [e["name"] for e in base] == ["mynet-MyNet"] and base[0]["hardware"]["crossbar"] == "64x64"
    # the saved baseline names the user's file: it is rebuilt only when the user names it again
    bdir = out / "baselines" / "mynet-MyNet"
    with pytest.raises(CrossnasError, match="is user code"):
        load_design(bdir)
    assert load_design(bdir, code=[f"{mynet}:MyNet"]).module.conv.out_channels == 4
    capsys.readouterr()
