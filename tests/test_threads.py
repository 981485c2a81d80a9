"""Thread policy: OMP_WAIT_POLICY before torch loads, auto's choice, applied before any torch work."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from crossnas import threads as th
from crossnas.space import get_space_preset


def _py(code: str, **env) -> str:
    e = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    return subprocess.run([sys.executable, "-c", code], env={**e, **env}, capture_output=True, text=True,
                          check=True).stdout.strip()


def test_omp_wait_policy_set_before_torch_loads_unless_the_user_set_it():
    code = ("import sys, os, crossnas.cli; crossnas.cli.build_parser(); "
            "print('torch' in sys.modules, os.environ['OMP_WAIT_POLICY'])")
    assert _py(code) == "False PASSIVE"  # set on import crossnas, and the CLI has not loaded torch yet
    assert _py(code, OMP_WAIT_POLICY="ACTIVE") == "False ACTIVE"


def test_auto_one_thread_for_small_work_more_only_on_free_cores():
    demo = get_space_preset("demo")
    small = th.largest_step_macs(demo, 1, 64)
    assert 1e6 < small < th.MACS_PER_THREAD
    assert th.auto_threads(small, cores=16, load=0.0) == 1
    big = 8 * th.MACS_PER_THREAD
    assert th.auto_threads(big, cores=4, load=0.0, passive=False) == 4
    assert th.auto_threads(big, cores=4, load=2.2, passive=False) == 2
    assert th.auto_threads(big, cores=4, load=9.0, passive=False) == 1  # busy and spinning: one, never 0
    assert th.auto_threads(big, cores=4, load=9.0, passive=True) == 4
    assert th.auto_threads(3 * th.MACS_PER_THREAD, cores=4, load=0.0, passive=True) == 3
    assert th.auto_threads(None, cores=4, load=0.0) == 1


def test_threads_arg():
    import argparse

    assert th.threads_arg("auto") == "auto" and th.threads_arg("3") == 3
    for bad in ("0", "x", "-1"):
        with pytest.raises(argparse.ArgumentTypeError):
            th.threads_arg(bad)


def test_run_applies_threads_before_torch_work_and_records_them(tmp_path, monkeypatch):
    from crossnas.pipeline import run as run_mod

    seen = {}

    def stage_supernet(self):
        seen["threads"] = torch.get_num_threads()

    monkeypatch.setattr(run_mod._Pipeline, "stage_supernet", stage_supernet)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        cfg = {"data": {"name": "digits", "limit": 100}, "space": {"preset": "demo"}, "threads": 1}
        run_mod.run_pipeline(cfg, tmp_path / "r", progress=False, stop_after="supernet")
        assert seen["threads"] == 1
        rec = json.loads((tmp_path / "r" / "run.json").read_text())["threads"]
        assert rec["setting"] == 1 and rec["intra_op"] == 1 and rec["cores"] >= 1
        torch.set_num_threads(2)
        # threads may change on resume, like the device
        run_mod.run_pipeline({**cfg, "threads": "auto"}, tmp_path / "r", progress=False,
                             stop_after="supernet", resume=True)
        assert seen["threads"] == 1  # the demo's work is small: auto picks one thread
        assert json.loads((tmp_path / "r" / "run.json").read_text())["threads"]["setting"] == "auto"
    finally:
        torch.set_num_threads(before)


def test_cli_train_supernet_applies_threads_first(tmp_path, monkeypatch):
    from crossnas.cli import main
    from crossnas.supernet import train as tr

    seen = {}
    monkeypatch.setattr(tr, "train_supernet",
                        lambda *a, **k: seen.setdefault("t", torch.get_num_threads()) and [])
    cfg = tmp_path / "c.yaml"
    cfg.write_text("data: {name: digits, limit: 100}\nspace: {preset: demo}\n")
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        assert main(["train-supernet", str(cfg), "--out", str(tmp_path / "o"), "--threads", "1",
                     "--no-progress"]) == 0
        assert seen["t"] == 1
    finally:
        torch.set_num_threads(before)


def test_cli_simulate_applies_threads_before_the_simulation(tmp_path, monkeypatch):
    from crossnas import analog
    from crossnas.cli import main

    seen = {}
    real = analog.evaluate_pim

    def spy(*a, **k):
        seen["threads"] = torch.get_num_threads()
        return real(*a, **k)

    monkeypatch.setattr(analog, "evaluate_pim", spy)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))
    torch.save(model.state_dict(), tmp_path / "w.pt")
    (tmp_path / "m.py").write_text(
        "import torch\n\ndef net(in_channels, num_classes, input_size):\n"
        "    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))\n")
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        out = tmp_path / "sim.json"
        assert main(["simulate", "--model", f"{tmp_path / 'm.py'}:net", "--weights", str(tmp_path / "w.pt"),
                     "--hardware", "mnsim-default", "--data", "synthetic:1x8x8:10:40", "--chips", "1",
                     "--fidelity", "fast", "--calib-batches", "1", "--threads", "1", "--json", str(out)]) == 0
        assert seen["threads"] == 1
        assert json.loads(out.read_text())["threads"]["intra_op"] == 1
    finally:
        torch.set_num_threads(before)
