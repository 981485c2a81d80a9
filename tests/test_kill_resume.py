"""Kill-and-resume, one test per stage: a `crossnas run` subprocess is killed with SIGKILL while the stage
runs, `--resume` finishes it, and the final results equal an uninterrupted run's; the killed attempt's
time is counted in the stage's wall time. (benchmarks/resume.py does the same at random kill points.)
Slow on a shared machine (a subprocess run per stage): run with CROSSNAS_SLOW=1."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import yaml

from crossnas.cli import main
from crossnas.pipeline.state import STAGES
from test_pipeline import TINY

CLI = "import sys; from crossnas.cli import main; sys.exit(main())"


def _results(run_dir):
    final = json.loads((run_dir / "final.json").read_text())
    return [(e["name"], e["test"], e["cost"]["totals"]) for e in final["entries"]]


def _stage_status(run_dir):
    try:
        return {s: r["status"] for s, r in json.loads((run_dir / "run.json").read_text())["stages"].items()}
    except (OSError, ValueError, KeyError):
        return {}


def kill_during(cfg_file, out, stage, timeout=300.0) -> str:
    """Start `crossnas run` and SIGKILL it once `stage` (or a later one) is running; returns that stage."""
    proc = subprocess.Popen([sys.executable, "-c", CLI, "run", str(cfg_file), "--out", str(out),
                             "--no-progress"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    t0, want = time.monotonic(), STAGES.index(stage)
    try:
        while time.monotonic() - t0 < timeout:
            st = _stage_status(out)
            running = [s for s in STAGES[want:] if st.get(s) == "running"]
            if running:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                return running[0]
            if proc.poll() is not None:
                pytest.fail(f"the run ended (rc {proc.returncode}) before {stage} was seen running")
            time.sleep(0.005)
        pytest.fail("timed out")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("CROSSNAS_SLOW"), reason="slow (a subprocess run per stage): "
                    "set CROSSNAS_SLOW=1")
@pytest.mark.parametrize("stage", STAGES)
def test_kill_during_stage_then_resume(tiny_done_run, tmp_path, stage, capsys):
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(yaml.safe_dump(TINY))
    out = tmp_path / "run"
    killed = kill_during(cfg, out, stage)
    assert main(["run", str(cfg), "--out", str(out), "--resume", "--no-progress"]) == 0
    assert _results(out) == _results(tiny_done_run)
    rec = json.loads((out / "run.json").read_text())["stages"][killed]
    ends = [a["end"] for a in rec["attempts"]]
    assert ends == ["killed", "done"]
    assert rec["wall_s"] == pytest.approx(sum(a["wall_s"] for a in rec["attempts"]))
