"""Every file of a run folder that crossnas reads back, damaged four ways: a one-line error naming it
(exit 2, nothing else changed), or, for derived caches, regenerated with the same results.
The table is docs/reliability.md's."""

from __future__ import annotations

import hashlib
import json
import shutil

import numpy as np
import pytest
import yaml

from crossnas.cli import main
from test_pipeline import TINY

# (file, the stage made pending so that the file is read, outcome per damage; "error" or "regenerated")
ERR = {"truncated": "error", "garbled": "error", "empty": "error", "binary": "error"}
REGEN = {k: "regenerated" for k in ERR}
TABLE = [
    ("run.json", None, ERR),
    (".crossnas-run.json", None, ERR),
    ("supernet/checkpoint.pt", "supernet", ERR),  # a killed training resumes from it
    ("supernet/checkpoint.pt", "search", ERR),  # sha256 recorded by the finished supernet stage
    # a cut last line is an interrupted append: skipped
    ("supernet/metrics.jsonl", "report", {"truncated": "regenerated", "garbled": "error",
                                          "empty": "regenerated", "binary": "error"}),
    ("search/search_checkpoint.json", "search", ERR),
    ("search/front_exact.json", "search", REGEN),
    ("search/pareto.json", "retrain", ERR),
    ("designs/design-1/design.json", "final", ERR),
    ("designs/design-1/hardware.yaml", "final", ERR),
    ("designs/design-1/weights.pt", "final", ERR),
    ("baselines/lenet/weights.pt", "final", ERR),
    ("final/design-1.json", "final", REGEN),
    ("final.json", "report", ERR),
]
NOT_COMPARED = ("run.json", ".crossnas-run.json", ".crossnas.lock", "run.log")  # state, marker, log


def _damage(path, kind):
    data = path.read_bytes()
    if kind == "truncated":
        data = data[: len(data) // 2]
    elif kind == "garbled":
        mid = len(data) // 2
        data = data[:mid] + b"\xff\x00{]\xfe" * 4 + data[mid + 20:]
    elif kind == "empty":
        data = b""
    else:
        data = np.random.default_rng(0).integers(0, 256, 512, dtype=np.uint8).tobytes()
    path.write_bytes(data)


def _sums(root):
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in root.rglob("*") if p.is_file()}


def _results(run_dir):
    final = json.loads((run_dir / "final.json").read_text())
    return [(e["name"], e["test"], e["cost"]["totals"]) for e in final["entries"]]


@pytest.fixture(scope="module")
def cfg_file(tmp_path_factory):
    p = tmp_path_factory.mktemp("cfg") / "tiny.yaml"
    p.write_text(yaml.safe_dump(TINY))
    return p


@pytest.mark.parametrize("rel, pending, kind", [(r, p, k) for r, p, o in TABLE for k in o],
                         ids=lambda v: str(v))
def test_damaged_file(tiny_done_run, tmp_path, cfg_file, capsys, rel, pending, kind):
    outcome = dict((r, o) for r, p, o in TABLE if r == rel and p == pending)[rel][kind]
    out = tmp_path / "run"
    shutil.copytree(tiny_done_run, out)
    if pending is not None:
        state = json.loads((out / "run.json").read_text())
        state["stages"][pending]["status"] = "running" if pending == "supernet" else "pending"
        (out / "run.json").write_text(json.dumps(state))
    if pending == "final" and not rel.startswith("final/"):
        shutil.rmtree(out / "final")  # else the final stage answers from its per-entry cache
    before = _sums(out)
    _damage(out / rel, kind)
    damaged = (out / rel).read_bytes()
    capsys.readouterr()
    rc = main(["run", str(cfg_file), "--out", str(out), "--resume", "--no-progress"])
    err = capsys.readouterr().err.strip()
    if outcome == "error":
        assert rc == 2, err
        assert len(err.splitlines()) == 1 and err.startswith(f"crossnas run: error: {out / rel}: "), err
        assert (out / rel).read_bytes() == damaged  # not overwritten
        after = _sums(out)
        changed = [f for f, h in before.items() if f != rel and f not in NOT_COMPARED and after.get(f) != h]
        assert not changed
    else:
        assert rc == 0, err
        assert _results(out) == _results(tiny_done_run)
        if rel.endswith(".json"):
            json.loads((out / rel).read_text())  # valid again
