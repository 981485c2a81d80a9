"""Ray backend: identical evaluation logs to the local backend and the process pool, retry on actor death,
a clear error when the cluster is unreachable. One local Ray (2 CPUs) serves the whole module."""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

ray = pytest.importorskip("ray", reason="the Ray backend needs the 'distributed' extra (pip install "
                                        "'crossnas[distributed]'); CI installs it through the 'dev' extra")

import torch  # noqa: E402

from crossnas.errors import CrossnasError  # noqa: E402
from crossnas.hardware import load_hardware  # noqa: E402
from crossnas.search import ProcessPoolBackend, search  # noqa: E402
from crossnas.search.crosslayer import CrossLayerEvaluator  # noqa: E402
from crossnas.search.ray_backend import RayBackend  # noqa: E402
from helpers import one_epoch_demo_supernet  # noqa: E402

torch.set_num_threads(1)  # the contract: one torch thread per worker, the driver included
SEARCH = {"objectives": {"accuracy_pim": "max", "edp_js": "min"}, "strategy": "nsga2", "budget": 8,
          "pop_size": 4, "seed": 0, "progress": False}


@pytest.fixture(scope="module")
def backend():
    """One local Ray (2 CPUs) and one 2-actor backend for the module: actor start-up dominates test time."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    # actors cannot import this test module: ship its helpers (DieOnce, _fails) by value
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    rb = RayBackend(actors=2, max_retries=1)
    yield rb
    rb.close()
    assert ray.is_initialized()  # the backend joined the module's Ray; closing it left Ray running
    ray.shutdown()


@pytest.fixture(scope="module")
def problem(tmp_path_factory):
    """The digits demo space and an evaluator on a briefly trained supernet, so accuracies differ between
    candidates and depend on every input of the evaluation (BN and calibration batches included)."""
    splits, space, sn = one_epoch_demo_supernet(400)
    shape = (splits.in_channels, splits.input_size, splits.input_size)
    ev = CrossLayerEvaluator(space, sn, splits.train, splits.val, load_hardware("mnsim-default"), shape,
                             fidelity="fast", val_limit=64, bn_batches=2, calib_batches=1, batch_size=32)
    return space, ev


def _log(path: Path) -> list[tuple[list[int], dict]]:
    return [(r["genome"], r["metrics"]) for r in map(json.loads, path.read_text().splitlines())]


def _run(space, evaluate, backend, path: Path):
    res = search(space, evaluate, backend=backend, log_path=path, **SEARCH)
    return res, _log(path)


@pytest.fixture(scope="module")
def reference(problem, tmp_path_factory):
    space, ev = problem
    return _run(space, ev, None, tmp_path_factory.mktemp("local") / "evaluations.jsonl")


def test_backends_give_identical_evaluation_logs(problem, reference, backend, tmp_path):
    space, ev = problem
    res_local, log_local = reference
    assert len(log_local) == SEARCH["budget"]
    assert len({m["accuracy_pim"] for _, m in log_local}) > 1  # a log that could tell backends apart
    pool = ProcessPoolBackend(2)
    try:
        res_pool, log_pool = _run(space, ev, pool, tmp_path / "pool.jsonl")
    finally:
        pool.close()
    puts = backend._puts
    res_ray, log_ray = _run(space, ev, backend, tmp_path / "ray.jsonl")
    assert backend._puts == puts + 1  # the evaluator (supernet + data) went to the object store once
    assert log_pool == log_local
    assert log_ray == log_local
    keys = [r["key"] for r in res_local.pareto]
    assert [r["key"] for r in res_pool.pareto] == keys and [r["key"] for r in res_ray.pareto] == keys


@dataclass
class DieOnce:
    """Kills the worker process the first time it meets `victim` (a marker file makes the retry pass)."""

    inner: object
    victim: dict
    marker: str

    def __call__(self, archs):
        if self.victim in archs and not os.path.exists(self.marker):
            Path(self.marker).write_text(str(os.getpid()))
            os._exit(1)
        return self.inner(archs)


def test_actor_killed_mid_batch_is_retried_with_the_same_result(problem, reference, backend, tmp_path):
    space, ev = problem
    res_local, log_local = reference
    victim = res_local.history[5]["arch"]  # second generation
    marker = tmp_path / "killed"
    pids_before = ray.get([a.ready.remote() for a in backend._actors])
    res, log = _run(space, DieOnce(ev, victim, str(marker)), backend, tmp_path / "ray.jsonl")
    pids_after = ray.get([a.ready.remote() for a in backend._actors])
    assert marker.exists() and int(marker.read_text()) in pids_before  # an actor really died
    assert len(set(pids_after) - set(pids_before)) == 1  # ... and exactly one was replaced
    assert log == log_local
    assert [r["key"] for r in res.pareto] == [r["key"] for r in res_local.pareto]


def _double(archs):
    return [{"a2": 2 * a["a"]} for a in archs]


def _fails(archs):
    raise CrossnasError("evaluate: this candidate is broken")


def test_evaluator_errors_surface_as_themselves(backend):
    with pytest.raises(CrossnasError, match="this candidate is broken"):
        backend.map(_fails, [{"a": 1}, {"a": 2}])
    archs = [{"a": i} for i in range(5)]
    assert backend.map(_double, archs) == _double(archs)  # ... the actors keep serving, in order


def _threads(archs):
    return [{"threads": torch.get_num_threads()} for _ in archs]


def test_workers_run_one_torch_thread(backend):
    torch.set_num_threads(2)  # a driver with more threads must not leak them into its workers
    try:
        pool = ProcessPoolBackend(2)
        try:
            assert pool.map(_threads, [{}] * 4) == [{"threads": 1}] * 4
        finally:
            pool.close()
        assert backend.map(_threads, [{}] * 4) == [{"threads": 1}] * 4
    finally:
        torch.set_num_threads(1)


def _slow(archs):
    time.sleep(3.0)
    return [{"a": a["a"]} for a in archs]


def test_cluster_lost_mid_batch_names_resume(backend, monkeypatch):
    # stand-in for a dead head node: the GCS address stops answering while a batch is out
    monkeypatch.setattr(backend, "_gcs", "127.0.0.1:1")
    with pytest.raises(CrossnasError, match="lost the Ray cluster.*--resume"):
        backend.map(_slow, [{"a": 1}])
    monkeypatch.setattr(backend, "_lost", False)  # the module's cluster is fine: let close() clean up


def test_unreachable_cluster_fails_fast_with_a_clear_error():
    t0 = time.perf_counter()
    with pytest.raises(CrossnasError, match="no Ray cluster reachable at 127.0.0.1:1"):
        RayBackend(address="127.0.0.1:1")
    assert time.perf_counter() - t0 < 20  # a refused port, not Ray's minute-long reconnect loop
    with pytest.raises(CrossnasError, match="address: expected"):
        RayBackend(address="no-port-here")


def test_missing_extra_names_the_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    with pytest.raises(CrossnasError, match=r"pip install 'crossnas\[distributed\]'"):
        RayBackend(actors=1)
