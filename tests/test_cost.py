"""Cost model: hand-computed mappings, properties, batch == single, CLI errors."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch

from crossnas.cli import main
from crossnas.cost import LayerTable, evaluate_batch, evaluate_cost, table_for
from crossnas.errors import CrossnasError
from crossnas.hardware import load_hardware
from crossnas.hardware import tables as T
from crossnas.models import get_model
from crossnas.network import LayerSpec, extract_layers

torch.set_num_threads(1)
MN = "mnsim-default"


def conv(cin, cout, hw=8, k=3, name="c"):
    return LayerSpec(name, "conv", cin, cout, (k, k), (1, 1), (k // 2, k // 2), 1, (hw, hw), (hw, hw),
                     cout * hw * hw * cin * k * k)


def lin(cin, cout, name="fc"):
    return LayerSpec(name, "linear", cin, cout, macs=cin * cout)


@pytest.fixture(scope="module")
def vgg_table():
    return LayerTable.from_layers(extract_layers(get_model("vgg8", 3, 10, 32), (3, 32, 32)))


def test_vgg8_maps_to_mnsim_2544_crossbars(vgg_table):
    r = evaluate_cost(vgg_table, load_hardware(MN))
    assert [ly["crossbars"] for ly in r.layers if ly["crossbars"]] == [16, 80, 80, 160, 320, 608, 1216, 64]
    assert r.totals["crossbars"] == 2544
    assert set(r.totals) == {"latency_s", "latency_sequential_s", "energy_j", "area_mm2", "edp_js",
                             "crossbars", "tiles", "tops_per_w"}
    assert r.totals["tiles"] == 2544 // 16  # 4 x 4 arrays per tile
    assert r.totals["edp_js"] == pytest.approx(r.totals["energy_j"] * r.totals["latency_s"])


def test_hand_kernel_aligned_per_crossbar_differential():
    ly = evaluate_cost([conv(128, 128)], load_hardware(MN)).layers[0]
    # 252 rows = 28 channels x 9 -> 5 row tiles; 1 col tile; 8 magnitude slices; x2 differential
    assert (ly["rows_per_tile"], ly["row_tiles"], ly["col_tiles"], ly["slices"]) == (252, 5, 1, 8)
    assert ly["crossbars"] == 80
    # 9 unsigned 1-bit chunks x ceil(252/128 DACs) x ceil(128 cols/128 ADCs)
    assert ly["cycles_per_output"] == 9 * 2 * 1


def test_hand_im2col_packed_offset():
    hw = load_hardware(MN, {"crossbar.rows": 128, "crossbar.cols": 128, "crossbar.signed": "offset",
                            "crossbar.row_packing": "im2col", "crossbar.slice_placement": "packed",
                            "device.bits_per_cell": 2})
    ly = evaluate_cost([conv(64, 64)], hw).layers[0]
    # slices ceil(9/2)=5; rows 576/128 -> 5; cols 64*5=320/128 -> 3; one array per tile
    assert (ly["slices"], ly["row_tiles"], ly["col_tiles"], ly["crossbars"]) == (5, 5, 3, 15)


def test_hand_kernel_aligned_packed_differential():
    hw = load_hardware(MN, {"crossbar.rows": 128, "crossbar.cols": 128, "crossbar.slice_placement": "packed",
                            "device.bits_per_cell": 2})
    ly = evaluate_cost([conv(64, 32)], hw).layers[0]
    # 126 rows = 14 ch x 9 -> ceil(64/14)=5; slices ceil(8/2)=4; cols 32*4=128 -> 1; x2 pair
    assert (ly["rows_per_tile"], ly["row_tiles"], ly["slices"], ly["col_tiles"], ly["crossbars"]) == (
        126, 5, 4, 1, 10)


def test_hand_im2col_per_crossbar_offset_linear():
    hw = load_hardware(MN, {"crossbar.rows": 128, "crossbar.cols": 128, "crossbar.signed": "offset",
                            "crossbar.row_packing": "im2col", "quant.weight_bits": 8})
    ly = evaluate_cost([lin(300, 300)], hw).layers[0]
    assert (ly["slices"], ly["row_tiles"], ly["col_tiles"], ly["crossbars"]) == (8, 3, 3, 72)


def test_kernel_larger_than_crossbar_is_error():
    with pytest.raises(CrossnasError):
        evaluate_cost([conv(8, 8)], load_hardware(MN, {"crossbar.rows": 8}))


def test_more_cell_bits_never_add_crossbars(vgg_table):
    for signed in ("differential", "offset"):
        for place in ("packed", "per_crossbar"):
            hws = [load_hardware(MN, {"device.bits_per_cell": b, "crossbar.signed": signed,
                                      "crossbar.slice_placement": place}) for b in range(1, 9)]
            xb = evaluate_batch(vgg_table, hws)["crossbars"]
            assert np.all(np.diff(xb) <= 0), (signed, place, xb)


def test_more_dac_bits_cut_input_cycles():
    cyc = [evaluate_cost([conv(64, 64)], load_hardware(MN, {"dac.bits": b})).layers[0]["cycles_per_output"]
           for b in range(1, 9)]
    assert all(a >= b for a, b in zip(cyc, cyc[1:])) and cyc[-1] < cyc[0]


@pytest.mark.parametrize("table", T.ADC_TABLES)
def test_lower_resolution_adc_never_costs_more(table):
    e = T.adc_energy_j(table, np.arange(1, 17))
    assert np.all(np.diff(e) >= 0)


def test_lower_adc_bits_never_raise_energy(vgg_table):
    hws = [load_hardware(MN, {"adc.bits": b, "adc.power_w": None, "adc.energy_table": "murmann"})
           for b in range(1, 12)]
    e = evaluate_batch(vgg_table, hws)["energy_j"]
    assert np.all(np.diff(e) >= 0)


def test_per_layer_adc_override(vgg_table):
    base = evaluate_cost(vgg_table, load_hardware(MN))
    low = evaluate_cost(vgg_table, load_hardware(MN, {"adc.per_layer": {"2": 4}}))
    assert low.layers[2]["adc_bits"] == 4 and low.layers[0]["adc_bits"] == 6
    high = evaluate_cost(vgg_table, load_hardware(MN, {"adc.per_layer": {"2": 8}}))
    # below the law's 7-bit corner conversion energy is flat; the shorter settle and conversion still save
    assert low.layers[2]["energy_breakdown"]["adc"] <= base.layers[2]["energy_breakdown"]["adc"]
    assert low.layers[2]["energy_j"] < base.layers[2]["energy_j"] < high.layers[2]["energy_j"]
    assert high.layers[2]["energy_breakdown"]["adc"] > 1.5 * base.layers[2]["energy_breakdown"]["adc"]
    assert low.layers[2]["area_mm2"] < base.layers[2]["area_mm2"] < high.layers[2]["area_mm2"]
    assert low.layers[0]["energy_breakdown"]["adc"] == base.layers[0]["energy_breakdown"]["adc"]


def test_duplication_shortens_latency_not_dynamic_energy(vgg_table):
    a = evaluate_cost(vgg_table, load_hardware(MN))
    b = evaluate_cost(vgg_table, load_hardware(MN, {"system.duplication": "balance"}))
    assert b.totals["latency_s"] < a.totals["latency_s"]
    assert b.totals["crossbars"] > a.totals["crossbars"]
    for la, lb in zip(a.layers, b.layers):
        for comp in la["energy_breakdown"]:
            if comp not in ("leakage", "interconnect"):  # copies spread over more tiles: more hops
                assert lb["energy_breakdown"][comp] == pytest.approx(la["energy_breakdown"][comp])


def test_batch_equals_single(vgg_table):
    lenet = LayerTable.from_layers(extract_layers(get_model("lenet", 1, 10, 28), (1, 28, 28)))
    hws = [load_hardware(MN), load_hardware("isaac-like"),
           load_hardware(MN, {"crossbar.rows": 128, "crossbar.cols": 64, "adc.per_layer": {"1*": 4},
                              "system.duplication": "balance", "crossbar.row_packing": "im2col"})]
    tables = [vgg_table, lenet, vgg_table]
    batch = evaluate_batch(tables, hws)
    for j, (t, h) in enumerate(zip(tables, hws)):
        single = evaluate_cost(t, h).totals
        for k, v in single.items():
            assert batch[k][j] == pytest.approx(v, rel=1e-12), k
    shared = evaluate_batch(vgg_table, hws)
    assert shared["energy_j"][0] == pytest.approx(evaluate_cost(vgg_table, hws[0]).totals["energy_j"])


def test_fixed_tiles_too_small_warns(vgg_table):
    with pytest.warns(UserWarning, match="tiles"):
        evaluate_cost(vgg_table, load_hardware(MN, {"system.tiles": 4}))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        evaluate_cost(vgg_table, load_hardware(MN, {"system.tiles": 1000}))


def test_report_to_dict_is_json(vgg_table):
    d = evaluate_cost(vgg_table, load_hardware(MN)).to_dict()
    json.dumps(d)
    assert "energy_breakdown" in d["layers"][0] and "totals" in d


def test_cli_writes_json_and_plot(tmp_path):
    out, png = tmp_path / "o.json", tmp_path / "b.png"
    rc = main(["evaluate", "--model", "lenet", "--input", "1x28x28", "--hardware", MN, "--set", "adc.bits=5",
               "--json", str(out), "--plot", str(png)])
    assert rc == 0
    d = json.loads(out.read_text())
    assert d["totals"]["crossbars"] > 0 and len(d["layers"]) > 0
    assert png.read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("extra", [
    ["--set", "adc.nonsense=3"], ["--set", "adc.bits=0"], ["--set", "device.bits_per_cell=8",
                                                             "--set", "quant.weight_bits=4"],
    ["--set", "crossbar.rows=4"], ["--hardware", "/nonexistent/hw.yaml"], ["--input", "3x32"],
])
def test_cli_bad_input_exit2_nothing_written(tmp_path, capsys, extra):
    out = tmp_path / "o.json"
    args = ["evaluate", "--model", "lenet", "--input", "1x28x28", "--json", str(out)]
    rc = main(args + extra)
    assert rc == 2 and not out.exists()
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_cli_untraceable_and_missing_model(tmp_path):
    bad = tmp_path / "m.py"
    bad.write_text("from torch import nn\ndef f(c, n, s):\n    return nn.Linear(7, n)\n")
    out = tmp_path / "o.json"
    for model in (f"{bad}:f", f"{tmp_path}/missing.py:f", "nonexistent-model"):
        assert main(["evaluate", "--model", model, "--input", "3x8x8", "--json", str(out)]) == 2
    assert not out.exists()


def test_table_for_caches_per_model():
    m = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.ReLU())
    t = table_for(m, (1, 28, 28))
    assert table_for(m, (1, 28, 28)) is t and table_for(m, (1, 32, 32)) is not t
