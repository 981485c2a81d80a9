"""Resume checks what results depend on: hardware and space file contents, the supernet checkpoint, the
search checkpoint's and the front cache's hardware; where candidates run never matters."""

from __future__ import annotations

import copy
import json

import pytest
import yaml

from crossnas.cli import main
from test_pipeline import TINY


def _err(capsys):
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


@pytest.fixture
def hw_cfg(tmp_path):
    """TINY with its hardware in an overlay *file*."""
    hw = tmp_path / "hw.yaml"
    hw.write_text(yaml.safe_dump({"base": "mnsim-default", "device": {"variation": 0.05},
                                  "quant": {"weight_bits": 6, "act_bits": 6}}))
    cfg = copy.deepcopy(TINY)
    cfg["hardware"] = {"preset": str(hw)}
    p = tmp_path / "tiny.yaml"
    p.write_text(yaml.safe_dump(cfg))
    return p, hw


def _set_variation(hw, v):
    data = yaml.safe_load(hw.read_text())
    data["device"]["variation"] = v
    hw.write_text(yaml.safe_dump(data))


def _run(cfg, out, *extra):
    return main(["run", str(cfg), "--out", str(out), "--no-progress", *extra])


def test_editing_the_hardware_file_is_refused_once_search_ran(tmp_path, hw_cfg, capsys):
    cfg, hw = hw_cfg
    out = tmp_path / "run"
    assert _run(cfg, out, "--stop-after", "supernet") == 0
    _set_variation(hw, 0.1)  # search has not started: allowed, and recorded
    assert _run(cfg, out, "--resume", "--stop-after", "search") == 0
    state = json.loads((out / "run.json").read_text())
    assert "resolved_hardware.device.variation" in state["config_changes"][-1]["fields"]
    _set_variation(hw, 0.5)
    capsys.readouterr()
    assert _run(cfg, out, "--resume") == 2
    err = _err(capsys)
    assert "resolved_hardware.device.variation (0.1 -> 0.5)" in err
    assert not (out / "designs").exists()
    # backend and workers never change results: always allowed on resume
    _set_variation(hw, 0.1)
    assert _run(cfg, out, "--resume", "--stop-after", "retrain", "--backend", "local", "--workers", "3") == 0


def test_a_replaced_supernet_checkpoint_is_refused(tmp_path, hw_cfg, capsys):
    cfg, _ = hw_cfg
    a, b = tmp_path / "a", tmp_path / "b"
    assert _run(cfg, a, "--stop-after", "supernet") == 0
    other = copy.deepcopy(TINY)
    other["supernet"]["seed"] = 1
    (tmp_path / "other.yaml").write_text(yaml.safe_dump(other))
    assert _run(tmp_path / "other.yaml", b, "--stop-after", "supernet") == 0
    (a / "supernet" / "checkpoint.pt").write_bytes((b / "supernet" / "checkpoint.pt").read_bytes())
    capsys.readouterr()
    assert _run(cfg, a, "--resume") == 2
    assert f"{a / 'supernet' / 'checkpoint.pt'}: changed since the supernet stage wrote it" in _err(capsys)


@pytest.fixture
def searched(tmp_path, hw_cfg):
    cfg, hw = hw_cfg
    sn = tmp_path / "sn"
    assert main(["train-supernet", str(cfg), "--out", str(sn), "--no-progress"]) == 0
    out = tmp_path / "search"
    argv = ["search", str(cfg), "--supernet", str(sn / "checkpoint.pt"), "--out", str(out), "--no-progress",
            "--device", "cpu"]
    assert main(argv) == 0
    return argv, out, hw


def test_search_resume_with_other_hardware_is_refused(searched, capsys):
    argv, out, hw = searched
    before = (out / "pareto.json").read_bytes()
    _set_variation(hw, 0.5)
    capsys.readouterr()
    assert main([*argv, "--resume"]) == 2
    err = _err(capsys)
    assert f"{out / 'search_checkpoint.json'}: made with hardware.device.variation=0.05, not 0.5" in err
    assert (out / "pareto.json").read_bytes() == before
    assert main([*argv, "--force"]) == 0  # starting over at 0.5 is fine


def test_front_cache_keys_on_hardware(searched, capsys):
    argv, out, hw = searched
    cache = out / "front_exact.json"
    data = json.loads(cache.read_text())
    for m in data["metrics"].values():
        m["accuracy_pim"] = -1.0  # a marker: shows whether the cached scores are used
    cache.write_text(json.dumps(data))
    assert main([*argv, "--resume"]) == 0
    accs = [r["metrics"]["accuracy_pim"] for r in json.loads((out / "pareto.json").read_text())["pareto"]]
    assert accs and all(a == -1.0 for a in accs)  # same hardware: cache used
    data["meta"]["hardware"]["device"]["variation"] = 0.5  # a cache scored on other hardware
    cache.write_text(json.dumps(data))
    assert main([*argv, "--resume"]) == 0
    accs = [r["metrics"]["accuracy_pim"] for r in json.loads((out / "pareto.json").read_text())["pareto"]]
    assert accs and all(0.0 <= a <= 1.0 for a in accs)


def test_a_field_added_since_the_run_started_at_its_default_is_no_change(tmp_path, capsys):
    from crossnas.pipeline.fingerprint import json_sha256

    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(yaml.safe_dump(TINY))
    out = tmp_path / "r"
    assert _run(cfg, out, "--stop-after", "supernet") == 0
    # the run.json an older crossnas wrote: no supernet.grad_clip in the inputs nor in the stage's hash
    state = json.loads((out / "run.json").read_text())
    default = state["inputs"]["supernet"].pop("grad_clip")
    state["stages"]["supernet"]["inputs"]["supernet"] = json_sha256(state["inputs"]["supernet"])
    (out / "run.json").write_text(json.dumps(state))
    changed = copy.deepcopy(TINY)
    changed["supernet"]["grad_clip"] = default * 2  # a value other than the default is a change
    (tmp_path / "changed.yaml").write_text(yaml.safe_dump(changed))
    assert _run(tmp_path / "changed.yaml", out, "--resume", "--stop-after", "search") == 2
    assert "supernet.grad_clip" in _err(capsys)
    assert _run(cfg, out, "--resume", "--stop-after", "search") == 0  # at its default: resumes
