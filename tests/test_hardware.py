"""Hardware config: presets load, overlays apply, bad input names the field."""

import pytest

from crossnas.errors import CrossnasError
from crossnas.hardware import list_presets, load_hardware, parse_set_args


@pytest.mark.parametrize("name", list_presets())
def test_every_preset_loads(name):
    hw = load_hardware(name)
    assert hw.name == name
    assert hw.device.bits_per_cell <= hw.quant.weight_bits


def test_mnsim_default_matches_shipped_settings():
    hw = load_hardware("mnsim-default")
    assert (hw.crossbar.rows, hw.crossbar.cols) == (256, 256)
    assert hw.crossbar.signed == "differential" and hw.crossbar.row_packing == "kernel_aligned"
    assert (hw.adc.bits, hw.dac.bits, hw.device.bits_per_cell) == (6, 1, 1)
    assert (hw.quant.weight_bits, hw.quant.act_bits) == (9, 9)
    assert hw.system.crossbars_per_pe * hw.system.pes_per_tile == 16


def test_yaml_overlay_on_base(tmp_path):
    f = tmp_path / "hw.yaml"
    f.write_text("base: mnsim-default\nadc: {bits: 4}\ndevice: {bits_per_cell: 2}\n")
    hw = load_hardware(f)
    assert hw.adc.bits == 4 and hw.device.bits_per_cell == 2
    assert hw.crossbar.rows == 256  # inherited from the base


def test_set_overrides_parse_and_apply():
    over = parse_set_args(["crossbar.rows=128", "adc.per_layer={'blocks.1.*': 4}", "device.r_off_ohm=null"])
    hw = load_hardware("mnsim-default", over)
    assert hw.crossbar.rows == 128 and hw.device.r_off_ohm is None
    assert hw.adc_bits_for("blocks.1.conv2") == 4 and hw.adc_bits_for("blocks.2.conv1") == 6


@pytest.mark.parametrize(("key", "value", "field"), [
    ("adc.bits", 0, "adc.bits"),
    ("crossbar.rows", 0, "crossbar.rows"),
    ("device.variation", -0.1, "device.variation"),
    ("adc.bitz", 3, "adc.bitz"),
    ("nosuch.key", 1, "nosuch"),
])
def test_bad_values_name_the_field(key, value, field):
    with pytest.raises(CrossnasError, match=field.replace(".", r"\.")):
        load_hardware("mnsim-default", {key: value})


def test_cell_bits_above_weight_bits_rejected():
    with pytest.raises(CrossnasError, match="bits_per_cell"):
        load_hardware("mnsim-default", {"device.bits_per_cell": 8, "quant.weight_bits": 4})


def test_unknown_key_in_file_and_missing_file(tmp_path):
    f = tmp_path / "bad.yaml"
    f.write_text("base: mnsim-default\ncrossbar: {rowz: 3}\n")
    with pytest.raises(CrossnasError, match="rowz"):
        load_hardware(f)
    with pytest.raises(CrossnasError, match="not found"):
        load_hardware(tmp_path / "missing.yaml")
    g = tmp_path / "nobase.yaml"
    g.write_text("base: no-such-preset\n")
    with pytest.raises(CrossnasError, match="base"):
        load_hardware(g)
