"""Kill-and-resume benchmark: SIGKILL a tiny `crossnas run` at 10 seeded random moments, resume it until
it finishes, and check that final.json's metrics equal an uninterrupted run's.

The tiny run is tests/test_pipeline.py's TINY config (synthetic 8x8 data, 2 supernet epochs, budget 8,
2 designs + 1 baseline). Kill times are drawn uniformly over the uninterrupted run's wall time (measured
first, in a subprocess like the killed runs; a run that finishes before its kill time is redone with half
the time, up to 4 times); the stage that was running at the kill is read from run.json.

Usage: PYTHONPATH=src python benchmarks/resume.py [--kills 10] [--seed 0] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from test_pipeline import TINY  # noqa: E402

CLI = "import sys; from crossnas.cli import main; sys.exit(main())"


def _cmd(cfg: Path, out: Path, resume: bool) -> list[str]:
    return [sys.executable, "-c", CLI, "run", str(cfg), "--out", str(out), "--no-progress",
            *(["--resume"] if resume else [])]


def _metrics(out: Path) -> list:
    final = json.loads((out / "final.json").read_text())
    return [(e["name"], e["test"], e["cost"]["totals"]) for e in final["entries"]]


def _running(out: Path) -> str:
    try:
        stages = json.loads((out / "run.json").read_text())["stages"]
    except (OSError, ValueError, KeyError):
        return "(before run.json)"
    return next((s for s, r in stages.items() if r["status"] == "running"), "(between stages)")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kills", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    rng = np.random.default_rng(args.seed)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        cfg = tmp / "tiny.yaml"
        cfg.write_text(yaml.safe_dump(TINY))
        t0 = time.perf_counter()
        subprocess.run(_cmd(cfg, tmp / "ref", False), check=True, env=env, stdout=subprocess.DEVNULL)
        full_s = time.perf_counter() - t0
        ref = _metrics(tmp / "ref")
        print(f"uninterrupted run: {full_s:.1f} s")
        print(f"{'kill':>4} {'at s':>6} {'stage killed':>18} {'resumes':>7} {'same final.json':>15}")
        for i in range(args.kills):
            out = tmp / f"k{i}"
            at = float(rng.uniform(0.0, full_s))
            stage = "(finished first)"
            for _ in range(4):  # on a shared machine a run can be faster than the reference: kill earlier
                proc = subprocess.Popen(_cmd(cfg, out, False), env=env, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)
                try:
                    proc.wait(timeout=at)
                except subprocess.TimeoutExpired:
                    stage = _running(out)
                    proc.send_signal(signal.SIGKILL)
                    proc.wait()
                    break
                shutil.rmtree(out)
                at *= 0.5
            resumes = 0
            while not (out / "final.json").exists() or _running(out) != "(between stages)" or \
                    json.loads((out / "run.json").read_text())["stages"]["report"]["status"] != "done":
                resumes += 1
                subprocess.run(_cmd(cfg, out, (out / "run.json").exists()), check=True, env=env,
                               stdout=subprocess.DEVNULL)
            same = _metrics(out) == ref
            rows.append({"kill": i, "at_s": round(at, 2), "stage": stage, "resumes": resumes, "same": same})
            print(f"{i:>4} {at:>6.1f} {stage:>18} {resumes:>7} {str(same):>15}")
    summary = {"full_s": full_s, "kills": rows, "all_same": all(r["same"] for r in rows)}
    print(f"identical final.json metrics after every kill: {summary['all_same']}")
    if args.json:
        from crossnas.search.store import atomic_write

        atomic_write(args.json, json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
