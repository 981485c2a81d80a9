"""Discoverable configuration: `config validate` lists every problem, `run --dry-run` writes nothing,
`hardware list/show`, the reference page, derived chip names and the genes-win notice."""

from __future__ import annotations

import copy
import os
from pathlib import Path

import pytest
import yaml

from crossnas.cli import main
from crossnas.errors import ConfigErrors
from crossnas.hardware import load_hardware
from crossnas.pipeline import load_run_config

REPO = Path(__file__).resolve().parents[1]

TINY = {
    "name": "tiny", "device": "cpu",
    "data": {"name": "synthetic:1x8x8:4:120", "seed": 0},
    "space": {"preset": "demo"},
    "supernet": {"epochs": 1, "batch_size": 32, "val_subnets": 0},
    "hardware": {"preset": "mnsim-default", "set": {"crossbar.rows": 128, "crossbar.cols": 128}},
    "search": {"budget": 4, "pop_size": 2, "val_limit": 16, "bn_batches": 1, "final_chips": 1,
               "batch_size": 16, "final_fidelity": "fast"},
    "select": {"k": 1}, "retrain": {"epochs": 0}, "baselines": {"models": []},
    "final": {"test_limit": 8, "chips": 1},
}

BAD = {
    "data": {"name": "nosuchdata", "val_fraction": 2},
    "space": {"preset": "demo", "file": "x.yaml"},
    "supernet": {"epochs": 0},
    "hardware": {"preset": "mnsim-default",
                 "set": {"crossbar.rows": -4, "adc.bitz": 3, "device.bits_per_cell": 12}},
    "search": {"budget": 0, "objectives": {"accuracy_pim": "max", "speed": "min"}},
    "select": {"rule": "best"},
    "bogus": 1,
}


def _write(tmp_path, cfg, name="cfg.yaml") -> Path:
    p = tmp_path / name
    p.write_text(yaml.safe_dump(cfg))
    return p


def test_validate_lists_every_problem_by_field_path(tmp_path, capsys):
    path = _write(tmp_path, BAD)
    assert main(["config", "validate", str(path)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    fields = ["data.val_fraction", "data.name", "space:", "supernet.epochs", "search.budget",
              "search.objectives", "select.rule", "bogus", "hardware.set: adc.bitz",
              "hardware.set: crossbar.rows", "hardware.set: device.bits_per_cell"]
    for f in fields:
        assert sum(f"{path}: {f}" in ln for ln in lines) == 1, (f, lines)
    assert lines[-1] == f"{path}: {len(fields)} problems" and len(lines) == len(fields) + 1
    # the run refuses with the first problem on one line and says how many more there are
    with pytest.raises(ConfigErrors, match=r"and 10 more"):
        load_run_config(path)


def test_validate_ok_and_two_field_error_without_config_dump(tmp_path, capsys):
    assert main(["config", "validate", str(_write(tmp_path, TINY))]) == 0
    assert "ok (data synthetic:1x8x8:4:120" in capsys.readouterr().out
    cfg = copy.deepcopy(TINY)
    cfg["hardware"]["set"] = {"device.bits_per_cell": 8, "quant.weight_bits": 4}
    assert main(["config", "validate", str(_write(tmp_path, cfg))]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "must not exceed quant.weight_bits (4)" in err[0]
    assert "r_on_ohm" not in err[0] and "{" not in err[0]  # the rule is named, the config is not dumped


def test_dry_run_writes_nothing(tmp_path, capsys, monkeypatch):
    import torch

    monkeypatch.chdir(tmp_path)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the probe's timings are not tested: keep it cheap on a shared machine
    path = _write(tmp_path, TINY)

    def tree():
        return sorted((p, p.stat().st_mtime_ns) for p in tmp_path.rglob("*"))

    before = tree()
    try:
        assert main(["run", str(path), "--dry-run", "--device", "cpu"]) == 0
    finally:
        torch.set_num_threads(threads)
    out = capsys.readouterr().out
    assert tree() == before and not (tmp_path / "runs").exists()
    assert "# resolved config" in out and "budget: 4" in out
    assert "candidates: " in out and "the search evaluates 4" in out
    for stage in ("supernet", "search", "retrain", "baselines", "final", "report", "total"):
        assert any(ln.startswith(stage) and "~" in ln for ln in out.splitlines()), stage
    # the space searches the crossbar: the overlay's 128x128 gives way, and the run says so
    assert "crossbar.rows=128, crossbar.cols=128 also set by the space gene hw.crossbar" in out
    assert "the genes win" in out


def test_hardware_list_show_schema(capsys):
    assert main(["hardware", "list"]) == 0
    out = capsys.readouterr().out
    assert "mnsim-default" in out and "isaac-like" in out and "256x256" in out
    assert main(["hardware", "show", "isaac-like", "--set", "adc.bits=6"]) == 0
    shown = yaml.safe_load(capsys.readouterr().out)
    assert shown["name"] == "isaac-like+adc6" and shown["adc"]["bits"] == 6
    assert load_hardware(shown).crossbar.rows == 128
    assert main(["hardware", "show", "--schema"]) == 0
    assert '"bits_per_cell"' in capsys.readouterr().out
    assert main(["hardware", "show", "nosuchchip"]) == 2
    assert "nosuchchip" in capsys.readouterr().err


def test_reference_page_in_sync_with_models():
    from crossnas.config_reference import render, rows, undocumented
    from crossnas.hardware.config import HardwareConfig

    assert undocumented() == []
    page = (REPO / "docs" / "reference.md").read_text()
    assert page == render(), "docs/reference.md is stale: crossnas config reference --out docs/reference.md"
    paths = [r[0] for r in rows(HardwareConfig)]
    assert "crossbar.wire_r_ohm" in paths and "adc.percentile" in paths
    row = next(r for r in rows(HardwareConfig) if r[0] == "device.read_latency_ns")
    assert row[2] == "ns" and row[3] == "`3.16`" and "> 0" in row[1]


def test_derived_chip_names():
    hw = load_hardware("mnsim-default", {"device.variation": 0.05})
    assert hw.name == "mnsim-default+var0.05"
    mod = hw.with_overrides({"crossbar.rows": 64, "crossbar.cols": 64, "device.bits_per_cell": 2,
                             "adc.bits": 8})
    assert mod.name == "mnsim-default+var0.05+xbar64+cell2+adc8"
    again = mod.with_overrides({"adc.bits": 4, "crossbar.rows": 128, "crossbar.cols": 64})
    assert again.name == "mnsim-default+var0.05+cell2+xbar128x64+adc4"  # one tag per field
    assert hw.with_overrides({"adc.bits": hw.adc.bits}).name == hw.name  # unchanged: the same name
    assert hw.with_overrides({"adc.bits": 8, "name": "mine"}).name == "mine"
    # an overlay on a preset is named after it unless it names itself
    assert load_hardware({"base": "isaac-like", "adc": {"bits": 6}}).name == "isaac-like+adc6"
    assert load_hardware({"base": "isaac-like", "name": "my-chip", "adc": {"bits": 6}}).name == "my-chip"


def test_derived_name_reaches_saved_design(tmp_path):
    import torch

    from crossnas.design import load_design, save_design
    from crossnas.models import get_model
    from crossnas.quant import quantize_model

    hw = load_hardware("mnsim-default").with_overrides({"crossbar.rows": 64, "crossbar.cols": 64})
    torch.manual_seed(0)
    model = quantize_model(get_model("lenet", 1, 4, 8, width_mult=0.5), 6, 6)
    save_design(tmp_path / "d", model, hardware=hw, in_channels=1, num_classes=4, input_size=8,
                model={"name": "lenet", "kwargs": {"width_mult": 0.5}, "weight_bits": 6, "act_bits": 6})
    assert load_design(tmp_path / "d").hardware.name == "mnsim-default+xbar64"


@pytest.mark.skipif(os.name == "nt", reason="posix paths")
def test_docs_cite_no_file_outside_the_repository():
    for md in [*(REPO / "docs").glob("*.md"), REPO / "README.md"]:
        text = md.read_text()
        assert "../shared" not in text and "shared/reference" not in text, md
