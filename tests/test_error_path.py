"""One error path: bad files, values and flags give `crossnas <cmd>: error: FILE-or-FIELD: ...` on one
line, exit 2, and leave nothing half-written."""

from __future__ import annotations

import copy
import shutil

import pytest
import yaml

from crossnas.cli import main
from crossnas.errors import CrossnasError
from crossnas.hardware import load_hardware
from crossnas.hardware.config import parse_set_args
from test_pipeline import TINY


def _one_line(capsys, cmd):
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith(f"crossnas {cmd}: error: "), err
    return err


def test_non_utf8_config_and_hardware_overlay(tmp_path, capsys):
    bad = tmp_path / "latin1.yaml"
    bad.write_bytes("name: caf\xe9\n".encode("latin-1"))
    assert main(["run", str(bad), "--out", str(tmp_path / "r")]) == 2
    assert f"{bad}: not UTF-8" in _one_line(capsys, "run")
    cfg = copy.deepcopy(TINY)
    cfg["hardware"] = {"preset": str(bad)}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    assert main(["run", str(tmp_path / "c.yaml"), "--out", str(tmp_path / "r")]) == 2
    assert f"{bad}: not UTF-8" in _one_line(capsys, "run")
    assert not (tmp_path / "r").exists()


def test_bad_set_value_names_the_field(capsys):
    assert main(["simulate", "--model", "lenet", "--weights", "w.pt", "--hardware", "mnsim-default",
                 "--data", "digits", "--set", "crossbar.rows=[1,"]) == 2
    assert "--set crossbar.rows: '[1,' is not a valid YAML value" in _one_line(capsys, "simulate")


def test_set_with_a_mapping_updates_the_section_instead_of_replacing_it():
    base = load_hardware("mnsim-default")
    hw = load_hardware("mnsim-default", parse_set_args(["crossbar={rows: 64}"]))
    assert hw.crossbar.rows == 64 and hw.crossbar.cols == base.crossbar.cols
    assert hw.crossbar.wire_r_ohm == base.crossbar.wire_r_ohm


def test_yaml_anchor_bomb_is_refused_quickly(tmp_path):
    lines = ['a0: &a0 ["x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 9)]
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text("base: mnsim-default\ndevice:\n  kind: rram\nx:\n" + "\n".join("  " + s for s in lines))
    with pytest.raises(CrossnasError, match="expands to more than 100000 values through YAML aliases") as e:
        load_hardware(bomb)
    assert len(str(e.value)) < 300


@pytest.mark.parametrize("key, value", [
    ("device.variation", "inf"), ("device.variation", "1e9"), ("device.variation", "nan"),
    ("device.r_on_ohm", "1e9"), ("device.r_on_ohm", "inf"), ("system.clock_hz", "inf"),
    ("system.clock_hz", "1e12"), ("crossbar.rows", "1000000000"),
])
def test_non_finite_and_absurd_physical_values_are_refused(key, value):
    with pytest.raises(CrossnasError, match=key.split(".")[1]) as e:
        load_hardware("mnsim-default", parse_set_args([f"{key}={value}"]))
    assert "less than or equal" in str(e.value) or "finite" in str(e.value)


def test_long_values_are_cut_in_messages():
    with pytest.raises(CrossnasError) as e:
        load_hardware("mnsim-default", {"device.kind": "x" * 100_000})
    assert len(str(e.value)) < 300


def test_simulate_flags_checked_before_work(tmp_path, capsys, tiny_done_run):
    d = tiny_done_run / "designs" / "design-1"
    base = ["simulate", "--design", str(d), "--data", "synthetic:1x8x8:4:240"]
    assert main([*base, "--batch-size", "0"]) == 2
    assert "--batch-size: expected >= 1, got 0" in _one_line(capsys, "simulate")
    folder = tmp_path / "adir"
    folder.mkdir()
    assert main([*base, "--json", str(folder)]) == 2
    assert "is a folder" in _one_line(capsys, "simulate")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adir"] and not any(folder.iterdir())


def test_export_refuses_an_opset_it_cannot_write(tmp_path, capsys, tiny_done_run):
    pytest.importorskip("onnx")
    d = tmp_path / "d"
    shutil.copytree(tiny_done_run / "designs" / "design-1", d)
    assert main(["export", str(d), "--onnx", str(tmp_path / "x.onnx"), "--opset", "1"]) == 2
    assert "--opset: expected 18.." in _one_line(capsys, "export")
    assert not (tmp_path / "x.onnx").exists()
