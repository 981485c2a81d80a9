"""run.json: the config snapshot, software versions, seeds and the status and wall time of each stage.

Wall time is summed over resumes; an interrupted stage stays `running` with the time it had used, so the
next `--resume` continues it and the report shows the total.
"""

from __future__ import annotations

import json
import platform
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from crossnas.errors import CrossnasError
from crossnas.search.store import atomic_write

STATE_FORMAT = 2
STAGES = ("supernet", "search", "baselines", "retrain", "final", "report")  # baselines before selection


def software_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    import numpy
    import torch

    try:
        own = version("crossnas")
    except PackageNotFoundError:  # running from a source tree
        own = "source"
    return {"crossnas": own, "python": platform.python_version(), "torch": torch.__version__,
            "numpy": numpy.__version__, "platform": platform.platform()}


class RunState:
    def __init__(self, run_dir: Path, data: dict[str, Any]):
        self.run_dir = run_dir
        self.data = data

    @property
    def path(self) -> Path:
        return self.run_dir / "run.json"

    @classmethod
    def open(cls, run_dir: Path, config: dict, seeds: dict, device: str, *, resume: bool,
             inputs: dict | None = None) -> RunState:
        """A new state, or the saved one when resuming: every input a started stage used must be unchanged
        (`inputs`: `fingerprint.resolved_inputs`, the config with file contents resolved)."""
        from crossnas.pipeline.fingerprint import NEUTRAL

        inputs = inputs if inputs is not None else {k: v for k, v in config.items() if k not in NEUTRAL}
        path = run_dir / "run.json"
        if path.exists():
            if not resume:
                raise CrossnasError(f"--out: {run_dir} already holds a run; pass --resume to continue it "
                                    "or choose another folder")
            data = read_state(path)
            _check_resume(run_dir, data, inputs)
            data["config"] = config
            st = cls(run_dir, data)
            st._close_killed_attempts()
        else:
            stages = {s: {"status": "pending", "wall_s": 0.0, "runs": 0, "attempts": []} for s in STAGES}
            st = cls(run_dir, {"format": STATE_FORMAT, "name": config.get("name") or run_dir.name,
                               "config": config, "versions": software_versions(), "seeds": seeds,
                               "device": device, "stages": stages})
        st.data["inputs"] = inputs
        st.data["device"] = device
        st.save()
        return st

    def _close_killed_attempts(self) -> None:
        """An attempt left open was killed (SIGKILL, power loss): count its time up to the last file the
        run wrote, so wall time includes killed attempts."""
        files = [p for p in self.run_dir.rglob("*") if p.is_file()]
        last = max((p.stat().st_mtime for p in files), default=time.time())
        for rec in self.data["stages"].values():
            for att in rec.get("attempts", []):
                if att.get("end") is None:
                    att["wall_s"] = max(0.0, last - att["started"])
                    att["end"] = "killed"
                    rec["wall_s"] += att["wall_s"]

    def save(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write(self.path, json.dumps(self.data, indent=1))

    def done(self, stage: str) -> bool:
        return self.data["stages"][stage]["status"] == "done"

    @contextmanager
    def stage(self, name: str, extra_inputs: dict | None = None):
        from crossnas.pipeline.fingerprint import stage_inputs

        rec = self.data["stages"][name]
        if rec["runs"] == 0 or "inputs" not in rec:
            rec["inputs"] = {**stage_inputs(self.data["inputs"], name), **(extra_inputs or {})}
        rec["status"], rec["runs"] = "running", rec["runs"] + 1
        att = {"started": time.time(), "wall_s": 0.0, "end": None}
        rec.setdefault("attempts", []).append(att)
        self.save()
        t0 = time.perf_counter()
        try:
            yield rec
        except BaseException as e:
            att["wall_s"] = time.perf_counter() - t0
            att["end"] = "interrupted" if isinstance(e, KeyboardInterrupt) else "failed"
            rec["wall_s"] += att["wall_s"]
            self.save()
            raise
        att["wall_s"] = time.perf_counter() - t0
        att["end"] = "done"
        rec["wall_s"] += att["wall_s"]
        rec["status"] = "done"
        self.save()


def read_state(path: Path) -> dict:
    """run.json, checked for its shape; a damaged file is a one-line error naming it."""
    from crossnas.jsonio import read_json

    data = read_json(path, "the run state", hint="restore it from a backup or start a new run folder")
    stages = data.get("stages")
    if not (isinstance(stages, dict) and all(isinstance(stages.get(s), dict) and "status" in stages[s]
                                             and "runs" in stages[s] for s in STAGES)
            and isinstance(data.get("config"), dict)):
        raise CrossnasError(f"{path}: not a crossnas run state (expected config and stages "
                            f"{', '.join(STAGES)}) (restore it from a backup or start a new run folder)")
    if data.get("format", 1) > STATE_FORMAT:
        raise CrossnasError(f"{path}: format {data['format']} is newer than this crossnas reads "
                            f"({STATE_FORMAT}) (update crossnas)")
    return data


def _check_resume(run_dir: Path, data: dict, inputs: dict) -> None:
    """Refuse a resume that changes what a started stage used; record changes the others may take."""
    from crossnas.pipeline.fingerprint import (
        FIRST_READER,
        NEUTRAL,
        changed_fields,
        describe,
        stage_inputs,
        without_new_defaults,
    )

    old = data.get("inputs")
    if old is None:  # a run.json from before fingerprints: compare the config sections it stored
        old = {k: v for k, v in data["config"].items() if k not in NEUTRAL}
        inputs = {k: v for k, v in inputs.items() if k in old}
    inputs = without_new_defaults(old, inputs)
    changed = changed_fields(old, inputs)
    stages = data["stages"]
    locked = [f for f in changed if stages[FIRST_READER.get(f.split(".")[0], "supernet")]["runs"] > 0]
    for name, rec in stages.items():  # the per-stage fingerprints catch what the field diff cannot name
        if rec["runs"] > 0 and isinstance(rec.get("inputs"), dict):
            now = stage_inputs(inputs, name)
            locked += [sec for sec, sha in rec["inputs"].items()
                       if sec in now and sha != now[sec] and not any(f.split(".")[0] == sec for f in locked)]
    if locked:
        raise CrossnasError(f"--resume: the config differs from the one {run_dir} was started with in "
                            f"{describe(sorted(set(locked)), old, inputs)}, which stages already run have "
                            "used (undo the change, or start a new run folder)")
    if changed:
        sections = sorted({f.split(".")[0] for f in changed})
        data.setdefault("config_changes", []).append(
            {"sections": sections, "fields": changed[:100], "before": {k: old.get(k) for k in sections}})
