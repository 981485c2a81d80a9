"""Validate before work: the late errors of a run (after supernet, search and retrain) now come before
its first stage, and a finished stage's needs are not checked again on resume."""

from __future__ import annotations

import copy
import socket

import pytest

from crossnas.errors import CrossnasError
from crossnas.pipeline import run_pipeline
from test_pipeline import TINY


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again: nothing listens there


def _patched(path: str, value):
    cfg = copy.deepcopy(TINY)
    *parents, leaf = path.split(".")
    node = cfg
    for p in parents:
        node = node[p]
    node[leaf] = value
    return cfg


@pytest.mark.parametrize("path, value, match", [
    ("baselines.models", ["lenet", "nosuchnet"], "baselines.models: model: expected one of"),
    ("select.metric", "accuracy", "select.metric: 'accuracy' is not a search metric"),
    ("select.budget", {"edp": 1.0}, "select.budget: 'edp' is not a search metric"),
    ("data.root", "/nonexistent/fashion", "data"),
    ("select.budget", {"edp_js": {"value": 0.5, "relative_to": "vgg8"}},
     r"select.budget.edp_js.relative_to: baseline 'vgg8' is not in baselines.models"),
    ("select.min_accuracy", {"value": 0.0, "relative_to": "vgg8"},
     r"select.min_accuracy.relative_to: baseline 'vgg8' is not in baselines.models"),
    # a mapping is read as a relative budget only: the error is that branch's, not "not a number"
    ("select.budget", {"edp_js": {"value": 0, "relative_to": "lenet"}},
     r"select.budget.edp_js.relative.value: Input should be greater than 0$"),
])
def test_late_errors_come_before_any_work(tmp_path, path, value, match):
    cfg = _patched(path, value)
    if path == "data.root":
        cfg["data"]["name"] = "fashion-mnist"
    out = tmp_path / "run"
    with pytest.raises(CrossnasError, match=match):
        run_pipeline(cfg, out, progress=False)
    assert not (out / "supernet").exists() and not (out / "run.json").exists()


def test_an_unreachable_ray_address_fails_before_the_supernet(tmp_path):
    pytest.importorskip("ray")
    cfg = _patched("search.backend", "ray")
    cfg["search"]["address"] = f"127.0.0.1:{_free_port()}"
    out = tmp_path / "run"
    with pytest.raises(CrossnasError, match="search.address: no Ray cluster reachable"):
        run_pipeline(cfg, out, progress=False)
    assert not (out / "supernet").exists()
    # once search is done the cluster is not needed: a resume with the gone address continues
    local = _patched("search.backend", "local")
    run_pipeline(local, out, progress=False, stop_after="search")
    run_pipeline(cfg, out, progress=False, resume=True, stop_after="retrain")
    assert (out / "designs" / "design-1" / "design.json").is_file()
