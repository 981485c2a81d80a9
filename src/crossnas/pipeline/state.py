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

STAGES = ("supernet", "search", "baselines", "retrain", "final", "report")  # baselines before selection
# the first stage that reads each config section: on --resume a section may change only while that
# stage has not started (device may always change; name is a label)
FIRST_READER = {"data": "supernet", "space": "supernet", "supernet": "supernet", "hardware": "search",
                "search": "search", "select": "retrain", "retrain": "baselines", "baselines": "baselines",
                "final": "final"}


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
    def open(cls, run_dir: Path, config: dict, seeds: dict, device: str, *, resume: bool) -> RunState:
        """A new state, or the saved one when resuming (the config must be the one it was made with)."""
        path = run_dir / "run.json"
        if path.exists():
            if not resume:
                raise CrossnasError(f"--out: {run_dir} already holds a run; pass --resume to continue it "
                                    "or choose another folder")
            data = json.loads(path.read_text())
            old = data.get("config", {})
            changed = sorted(k for k in set(old) | set(config) if old.get(k) != config.get(k)
                             and k not in ("device", "name", "threads", "analog"))
            locked = [k for k in changed if data["stages"][FIRST_READER.get(k, "supernet")]["runs"] > 0]
            if locked:
                raise CrossnasError(f"--resume: the config differs from the one {run_dir} was started with "
                                    f"in {', '.join(locked)}, which stages already run have used; "
                                    "start a new run folder instead")
            if changed:
                data.setdefault("config_changes", []).append(
                    {"sections": changed, "before": {k: old.get(k) for k in changed}})
                data["config"] = config
            st = cls(run_dir, data)
        else:
            stages = {s: {"status": "pending", "wall_s": 0.0, "runs": 0} for s in STAGES}
            st = cls(run_dir, {"name": config.get("name") or run_dir.name, "config": config,
                               "versions": software_versions(), "seeds": seeds, "device": device,
                               "stages": stages})
        st.data["device"] = device
        st.save()
        return st

    def save(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write(self.path, json.dumps(self.data, indent=1))

    def done(self, stage: str) -> bool:
        return self.data["stages"][stage]["status"] == "done"

    @contextmanager
    def stage(self, name: str):
        rec = self.data["stages"][name]
        rec["status"], rec["runs"] = "running", rec["runs"] + 1
        self.save()
        t0 = time.perf_counter()
        try:
            yield rec
        except BaseException:
            rec["wall_s"] += time.perf_counter() - t0
            self.save()
            raise
        rec["wall_s"] += time.perf_counter() - t0
        rec["status"] = "done"
        self.save()
