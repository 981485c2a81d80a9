"""The physics behind the cost model's genes: ADC law, read time, ADC sharing, data movement, leakage,
what the tracer costs or lists, and the published fitness's bounds."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from crossnas.cli import main
from crossnas.cost import evaluate_batch, evaluate_cost, table_for
from crossnas.cost.timing import read_time_s
from crossnas.errors import CrossnasError
from crossnas.hardware import adc_law, load_hardware
from crossnas.hardware import tables as T
from crossnas.models import get_model
from crossnas.network import extract_layers, uncosted
from crossnas.search.config import load_search_config
from crossnas.search.fitness import make_fitness

torch.set_num_threads(1)
MN = "mnsim-default"


@pytest.fixture(scope="module")
def vgg():
    return table_for(get_model("vgg8", 3, 10, 32), (3, 32, 32))


def totals(table, *overrides, preset=MN):
    return evaluate_batch(table, [load_hardware(preset, o) for o in overrides])


# --- ADC law ---------------------------------------------------------------------------------------------
def test_murmann_law_follows_the_survey_fit():
    bits = T.MURMANN_BITS
    law = adc_law.energy_factor(bits, 1, 7.0, 9.0)
    survey = T.MURMANN_ENERGY_J
    assert np.allclose(law / law[0], survey / survey[0], rtol=0.2)  # 1, 2, 16 vs 1, 1.15, 1.85, 15.1


def test_walden_law_is_flat_below_the_corner_and_doubles_above():
    e = adc_law.energy_factor(np.arange(1, 13), 0, 6.0, 9.0)
    assert np.all(e[:6] == e[0]) and np.allclose(e[6:] / e[5:-1], 2.0)
    assert np.all(np.diff(adc_law.area_factor(np.arange(1, 13), 6.45)) > 0)
    assert np.all(np.diff(adc_law.time_factor(np.arange(1, 13))) > 0)


def test_power_is_given_at_reference_bits(vgg):
    def adc_energy(o):
        r = evaluate_cost(vgg, load_hardware(MN, o))
        return sum(ly["energy_breakdown"]["adc"] for ly in r.layers)

    for bits in (4, 6, 8):
        base = adc_energy({"adc.bits": bits})
        assert adc_energy({"adc.bits": bits, "adc.power_w": 2.52e-3}) == pytest.approx(2 * base)
    # at the reference bits the law is the identity: energy per conversion = power / rate
    assert adc_energy({"adc.bits": 8, "adc.reference_bits": 8}) < adc_energy({"adc.bits": 8})


def test_every_adc_gene_moves_energy_area_latency(vgg):
    r = totals(vgg, {"adc.bits": 4}, {"adc.bits": 8})
    for k in ("energy_j", "area_mm2", "latency_s"):
        assert r[k][1] > r[k][0], k
    assert 1.5 <= r["energy_j"][1] / r["energy_j"][0] <= 3.5


# --- read time and ADC sharing ---------------------------------------------------------------------------
def test_read_time_grows_with_array_size_and_wires():
    t = read_time_s(3.16e-9, np.array([64, 256, 1024]), 256, 0.52, 2.4e-16, 1e4, 6)
    assert np.all(np.diff(t) > 0)
    assert read_time_s(3.16e-9, 1024, 1024, 0.0, 0.0, 1e4, 6) == pytest.approx(3.16e-9)


def test_adc_sharing_serialises_conversions(vgg):
    r = totals(vgg, {"adc.cols_per_adc": 1}, {"adc.cols_per_adc": 2}, {"adc.cols_per_adc": 8})
    assert np.all(np.diff(r["latency_sequential_s"]) > 0) and np.all(np.diff(r["area_mm2"]) < 0)


# --- data movement and leakage ---------------------------------------------------------------------------
def test_activations_are_moved_once(vgg):
    r = evaluate_cost(vgg, load_hardware(MN))
    for ly in r.layers:
        if ly["kind"] == "act":  # fused into the producer's output write: no traffic of its own
            assert ly["energy_breakdown"]["buffer"] == 0 and ly["energy_breakdown"]["interconnect"] == 0
    conv = [ly for ly in r.layers if ly["kind"] == "conv"]
    relu = [ly for ly in r.layers if ly["kind"] == "act"]
    assert sum(ly["energy_j"] for ly in relu) < 0.01 * sum(ly["energy_j"] for ly in conv)


def test_inter_tile_bandwidth_bounds_latency_where_it_binds(vgg):
    r = totals(vgg, {"system.inter_tile_gbps": 0.01}, {"system.inter_tile_gbps": 20.0},
               {"system.inter_tile_gbps": 1e6})
    assert r["latency_s"][0] > 10 * r["latency_s"][1]
    assert r["latency_s"][2] <= r["latency_s"][1]
    assert r["energy_j"][2] == pytest.approx(r["energy_j"][1], rel=1e-3)  # bandwidth is not energy


def test_leakage_power_does_not_grow_with_the_node(vgg):
    def leak_power(node):
        r = evaluate_cost(vgg, load_hardware(MN, {"device.technology_nm": node}))
        leak = sum(ly["energy_breakdown"]["leakage"] for ly in r.layers)
        return leak / r.totals["latency_s"] / r.totals["tiles"]

    assert leak_power(130) == pytest.approx(leak_power(32))
    assert leak_power(130) == pytest.approx(64 * 8192 * T.LEAKAGE_W_PER_BIT)


# --- tracer: costed or listed, never dropped -------------------------------------------------------------
class Mixed(nn.Module):
    def __init__(self, norm: bool = True):
        super().__init__()
        self.c1 = nn.Conv1d(4, 8, 3)
        self.dw = nn.Conv2d(8, 8, 3, padding=1, groups=8)
        self.act, self.hs = nn.GELU(), nn.Hardswish()
        self.norm = nn.LayerNorm(8) if norm else nn.Identity()
        self.fc = nn.Linear(8, 3)

    def forward(self, x):
        y = F.silu(self.c1(x)).unsqueeze(-1).expand(-1, -1, -1, 4)
        y = self.hs(self.act(self.dw(y)))
        y = F.relu(y) + y
        return self.fc(self.norm(y.mean((2, 3))))


def test_tracer_costs_activations_conv1d_grouped_and_lists_the_rest():
    with pytest.warns(UserWarning, match="not costed .*norm"):
        layers = extract_layers(Mixed(), (4, 10))
    kinds = [(ly.name, ly.kind) for ly in layers]
    assert ("c1", "conv") in kinds and ("dw", "conv") in kinds and ("fc", "linear") in kinds
    assert {"model.silu", "act.gelu", "hs.hardswish", "model.relu"} <= {n for n, k in kinds if k == "act"}
    assert ("model.add", "add") in kinds and ("model.mean", "pool") in kinds
    assert uncosted(layers) == ["norm (layer_norm)"]
    with pytest.raises(CrossnasError, match="norm"):
        extract_layers(Mixed(), (4, 10), strict=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert uncosted(extract_layers(Mixed(norm=False), (4, 10))) == []


def test_depthwise_conv_maps_one_tile_set_per_group():
    hw = load_hardware(MN)
    dw = evaluate_cost(extract_layers(nn.Conv2d(64, 64, 3, padding=1, groups=64), (64, 8, 8)), hw).layers[0]
    full = evaluate_cost(extract_layers(nn.Conv2d(64, 64, 3, padding=1), (64, 8, 8)), hw).layers[0]
    assert dw["macs"] * 64 == full["macs"]
    assert dw["row_tiles"] == 1 and dw["energy_j"] < full["energy_j"]


def test_cli_lists_uncosted_and_strict_fails(tmp_path, capsys):
    f = tmp_path / "m.py"
    f.write_text("from torch import nn\ndef make(in_channels, num_classes, input_size):\n"
                 "    s = input_size\n"
                 "    return nn.Sequential(nn.Conv2d(in_channels, 4, 3), nn.GroupNorm(2, 4), nn.Flatten(),"
                 " nn.Linear(4 * (s - 2) ** 2, num_classes))\n")
    out = tmp_path / "o.json"
    assert main(["evaluate", "--model", f"{f}:make", "--input", "1x8x8", "--json", str(out)]) == 0
    assert "not costed (1" in capsys.readouterr().out
    assert json.loads(out.read_text())["not_costed"] == ["1 (group_norm)"]
    out.unlink()
    assert main(["evaluate", "--model", f"{f}:make", "--input", "1x8x8", "--json", str(out), "--strict"]) == 2
    assert not out.exists() and "group_norm" in capsys.readouterr().err


@pytest.mark.parametrize("extra, field", [
    (["--set", "adc.law.corner_bits=0"], "adc.law.corner_bits"),
    (["--set", "adc.law.thermal_bits=5"], "adc.law"),
    (["--set", "adc.law.kind=flash"], "adc.law.kind"),
    (["--set", "adc.reference_bits=20"], "adc.reference_bits"),
    (["--set", "adc.per_layer={nosuch.*: 4}"], "adc.per_layer"),
])
def test_cli_bad_adc_settings_exit2_naming_the_field(tmp_path, capsys, extra, field):
    out = tmp_path / "o.json"
    rc = main(["evaluate", "--model", "lenet", "--input", "1x28x28", "--json", str(out)] + extra)
    err = capsys.readouterr().err.strip()
    assert rc == 2 and not out.exists() and len(err.splitlines()) == 1 and field in err


# --- published fitness -----------------------------------------------------------------------------------
def test_fitness_clips_so_a_higher_cost_never_scores_better():
    f = make_fitness("paper-stage1", {}, bounds={"latency_ms": (0.1, 1.0), "energy_mj": (1.0, 10.0)})
    low = {"accuracy_pim": 0.9, "latency_s": 0.05e-3, "energy_j": 2e-3}  # below the latency bound
    higher_energy = {**low, "energy_j": 9e-3}
    assert f(higher_energy) <= f(low)
    assert f.stats == {"clipped": 2, "total": 2}


def test_fitness_bounds_config_and_clipped_share():
    with pytest.raises(CrossnasError, match=r"^config\.search\.fitness_bounds"):
        load_search_config({"fitness_bounds": {"latency_ms": [1.0, 1.0]}})
    with pytest.raises(CrossnasError, match=r"^config\.search\.fitness_bounds"):
        load_search_config({"fitness_bounds": {"power_w": [0.0, 1.0]}})
    first = [{"accuracy_pim": 0.5, "latency_s": x * 1e-3, "energy_j": 1e-3} for x in (0.01, 0.5, 0.6)]
    with pytest.raises(CrossnasError, match="search.fitness_bounds: 33%"):
        make_fitness("paper-stage1", {}, bounds={"latency_ms": (0.1, 1.0), "energy_mj": (0.1, 10.0)},
                     first_metrics=first)


def test_cli_search_bad_fitness_bounds_exit2_nothing_written(tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("data: {name: digits}\nspace: {preset: demo}\nsearch:\n  fitness: paper-stage1\n"
                   "  fitness_bounds: {energy_mj: [2.0, 1.0]}\n")
    out = tmp_path / "out"
    rc = main(["search", str(cfg), "--supernet", str(tmp_path / "missing.pt"), "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and not out.exists() and len(err.splitlines()) == 1
    assert "search.fitness_bounds" in err and "energy_mj" in err
