"""Ray backend: long-lived actors evaluate contiguous chunks of each batch; the driver keeps the search state.

Each actor receives the evaluate callable (supernet, data, simulator) once per distinct callable, through
the object store, and keeps it; later batches send only the decoded architectures. Chunks are the same
as the process pool's (`split_chunks`) and results come back in submission order, so with one torch
thread per actor the evaluation log matches the local backend exactly.

Faults: an actor that dies during a batch is replaced and its chunk re-run (up to `max_retries` times per
chunk); evaluation is deterministic, so the result is unchanged. When the cluster cannot be reached or no
longer runs actors, `CrossnasError` says so; the search checkpoint of the last generation stays valid and
`--resume` continues from it.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import warnings
from typing import Any

from crossnas.errors import CrossnasError
from crossnas.search.backends import Evaluate, EvaluatorBackend, split_chunks

RESUME_HINT = "the search can be resumed from its last checkpoint with --resume"
POLL_S = 2.0  # how often a waiting driver checks that the cluster is still there


def _import_ray():
    try:
        import ray
    except ImportError:
        msg = "backend ray needs the 'distributed' extra: pip install 'crossnas[distributed]'"
        raise CrossnasError(msg) from None
    return ray


def _check_reachable(address: str, timeout: float) -> None:
    """A fast, clear failure for HOST:PORT with nothing listening (ray.init would retry for a long time)."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise CrossnasError(f"address: expected 'auto', HOST:PORT or ray://HOST:PORT, got {address!r}")
    try:
        socket.create_connection((host.strip("[]") or "127.0.0.1", int(port)), timeout=timeout).close()
    except OSError as e:
        raise CrossnasError(f"address: no Ray cluster reachable at {address} ({e.strerror or e}); start one "
                            f"with `ray start --head` or pass --address auto on a cluster node") from None


class _Worker:
    """Actor body: holds one evaluate callable (loaded on first use) and runs chunks with it."""

    def __init__(self, threads: int):
        from crossnas.search.backends import pin_torch_threads

        pin_torch_threads(threads)
        self._key: str | None = None
        self._fn: Any = None

    def ready(self) -> int:
        return os.getpid()

    def run(self, key: str, holder: list, archs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if key != self._key:
            import ray

            # the ref travels inside a list, so Ray does not resolve it per call: fetched once per actor
            self._fn, self._key = ray.get(holder[0]), key
        return list(self._fn(archs))


class RayBackend(EvaluatorBackend):
    """Evaluate on Ray actors: one per GPU when the cluster has GPUs, CPU actors otherwise.

    `address`: None starts a private local Ray (shut down by `close()`); "auto" joins the cluster this
    node belongs to; "HOST:PORT" (or "ray://HOST:PORT") joins that cluster. An already initialised Ray in
    this process is reused. `actors`: how many (default: all GPUs, else CPUs / threads_per_actor).
    """

    def __init__(self, actors: int | None = None, address: str | None = None, threads_per_actor: int = 1,
                 max_retries: int = 2, init_kwargs: dict | None = None, start_timeout_s: float = 120.0,
                 connect_timeout_s: float = 5.0):
        if actors is not None and int(actors) < 1:
            raise CrossnasError(f"workers: expected >= 1 Ray actors, got {actors}")
        if int(threads_per_actor) < 1:
            raise CrossnasError(f"threads_per_actor: expected >= 1, got {threads_per_actor}")
        if int(max_retries) < 0:
            raise CrossnasError(f"max_retries: expected >= 0, got {max_retries}")
        self.ray = ray = _import_ray()
        self.threads = int(threads_per_actor)
        self.max_retries = int(max_retries)
        self.start_timeout_s = float(start_timeout_s)
        self.address = address
        self._owns_ray = False
        self._lost = False
        kw = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.ERROR,
              **(init_kwargs or {})}
        if address and address != "auto" and not address.startswith("ray://"):
            _check_reachable(address, connect_timeout_s)
        if not ray.is_initialized():
            if address:
                kw.pop("num_cpus", None)  # resources belong to the cluster, not to a joining driver
                try:
                    ray.init(address=address, **kw)
                except (ConnectionError, RuntimeError, TimeoutError) as e:
                    raise CrossnasError(
                        f"address: cannot connect to Ray at {address!r}: {e}; a cluster with token "
                        f"authentication (the default for `ray start` since Ray 2.59) needs "
                        f"RAY_AUTH_MODE=token and its token in ~/.ray/auth_token or RAY_AUTH_TOKEN") from None
            else:
                kw.setdefault("num_cpus", (actors or os.cpu_count() or 1) * self.threads)
                ray.init(**kw)
                self._owns_ray = True
        try:
            self._gcs: str | None = ray.get_runtime_context().gcs_address
        except Exception:  # noqa: BLE001 - Ray Client (ray://) drivers have no GCS address to watch
            self._gcs = None
        res = ray.cluster_resources()
        self.gpus = int(res.get("GPU", 0))
        if self.gpus:
            limit, what = self.gpus, "GPUs"
            self._options = {"num_gpus": 1, "num_cpus": 0}
        else:
            limit, what = int(res.get("CPU", 0)) // self.threads, f"CPUs / {self.threads} threads per actor"
            self._options = {"num_cpus": self.threads}
        if limit < 1:
            self.close()
            raise CrossnasError(f"backend ray: the cluster has no room for an actor ({what}; "
                                f"resources {res})")
        n = int(actors) if actors else limit
        if n > limit:
            warnings.warn(f"backend ray: {n} actors requested, the cluster fits {limit} ({what}); "
                          f"using {limit}", stacklevel=2)
            n = limit
        self.n_actors = n
        self._actor_cls = ray.remote(max_restarts=0, max_task_retries=0)(_Worker)
        self._actors: list[Any] = []
        self._eval: tuple[Any, str, Any] | None = None  # (callable, key, ObjectRef)
        self._puts = 0
        try:
            self._actors = [self._spawn() for _ in range(n)]
            self._wait_ready(self._actors)
        except BaseException:
            self.close()
            raise

    # --- actors ----------------------------------------------------------------------------------
    def _spawn(self):
        return self._actor_cls.options(scheduling_strategy="SPREAD", **self._options).remote(self.threads)

    def _wait(self, refs: list, timeout: float | None = None) -> list:
        """`ray.wait` for one ref that notices a lost cluster within seconds: Ray itself would only end this
        process a minute after its GCS went away, with no word about resuming."""
        t_end = None if timeout is None else time.monotonic() + timeout
        while True:
            step = POLL_S if t_end is None else max(0.0, min(POLL_S, t_end - time.monotonic()))
            done, _ = self.ray.wait(refs, num_returns=1, timeout=step)
            if done:
                return done
            if self._gcs is not None:
                try:
                    host, _, port = self._gcs.rpartition(":")
                    socket.create_connection((host.strip("[]"), int(port)), timeout=POLL_S).close()
                except OSError:
                    self._lost = True
                    raise CrossnasError(f"backend ray: lost the Ray cluster (its GCS at {self._gcs} no "
                                        f"longer answers); {RESUME_HINT}") from None
            if t_end is not None and time.monotonic() >= t_end:
                return []

    def _wait_ready(self, actors: list) -> None:
        ray = self.ray
        refs = [a.ready.remote() for a in actors]
        try:
            while refs:
                done = self._wait(refs, timeout=self.start_timeout_s)
                if not done:
                    raise CrossnasError(f"backend ray: {len(actors)} actor(s) did not start within "
                                        f"{self.start_timeout_s:.0f} s (cluster resources "
                                        f"{ray.available_resources()}); {RESUME_HINT}")
                ray.get(done)
                refs = [r for r in refs if r not in done]
        except ray.exceptions.RayError as e:
            raise CrossnasError(f"backend ray: actors failed to start ({type(e).__name__}: {e}); "
                                f"{RESUME_HINT}") from None

    def _replace(self, slot: int) -> None:
        try:
            self.ray.kill(self._actors[slot], no_restart=True)
        except Exception:  # noqa: BLE001 - it is already gone
            pass
        self._actors[slot] = self._spawn()
        self._wait_ready([self._actors[slot]])

    def _holder(self, evaluate: Evaluate) -> tuple[str, list]:
        if self._eval is None or self._eval[0] is not evaluate:
            self._eval = None  # drop the previous callable's object before putting the next one
            self._puts += 1
            self._eval = (evaluate, f"eval-{self._puts}", self.ray.put(evaluate))
        return self._eval[1], [self._eval[2]]

    # --- EvaluatorBackend ------------------------------------------------------------------------
    def map(self, evaluate: Evaluate, archs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if not archs:
            return []
        ray = self.ray
        if not self._actors:
            raise CrossnasError("backend ray: map() after close()")
        dead = (ray.exceptions.RayActorError, ray.exceptions.WorkerCrashedError,
                ray.exceptions.ObjectLostError, ray.exceptions.NodeDiedError)
        try:
            key, holder = self._holder(evaluate)
            chunks = split_chunks(archs, self.n_actors)
            results: list[list | None] = [None] * len(chunks)
            tries = [0] * len(chunks)
            pending = {self._actors[i].run.remote(key, holder, c): i for i, c in enumerate(chunks)}
            failure: BaseException | None = None
            while pending and failure is None:
                done = self._wait(list(pending))
                i = pending.pop(done[0])
                try:
                    results[i] = ray.get(done[0])
                except ray.exceptions.RayTaskError as e:
                    cause = getattr(e, "cause", None)
                    failure = cause if isinstance(cause, Exception) else e
                except dead as e:
                    tries[i] += 1
                    if tries[i] > self.max_retries:
                        raise CrossnasError(
                            f"backend ray: a chunk of {len(chunks[i])} candidates failed on {tries[i]} "
                            f"actors ({type(e).__name__}); {RESUME_HINT}") from None
                    self._replace(i)
                    pending[self._actors[i].run.remote(key, holder, chunks[i])] = i
        except (ray.exceptions.LocalRayletDiedError, ConnectionError) as e:
            raise CrossnasError(f"backend ray: lost the Ray cluster ({type(e).__name__}: {e}); "
                                f"{RESUME_HINT}") from None
        except ray.exceptions.RaySystemError as e:
            raise CrossnasError(f"backend ray: Ray failed ({e}); {RESUME_HINT}") from None
        if failure is not None:
            for ref in pending:  # collect the other chunks, so Ray does not report them as unhandled
                try:
                    ray.get(ref)
                except Exception:  # noqa: BLE001 - only the first error is reported
                    pass
            # the evaluator's own error, as if it had run locally (RaySystemError: it could not be
            # deserialised on the worker, e.g. a module that is not installed there)
            raise failure
        out: list[dict[str, Any]] = []
        for r in results:
            out.extend(r or [])
        return out

    def close(self) -> None:
        ray = getattr(self, "ray", None)
        if ray is None:
            return
        if not getattr(self, "_lost", False):  # with the cluster gone there is nothing left to kill
            for a in getattr(self, "_actors", []):
                try:
                    ray.kill(a, no_restart=True)
                except Exception:  # noqa: BLE001 - cluster already gone
                    pass
        self._actors = []
        self._eval = None
        if self._owns_ray and ray.is_initialized():
            ray.shutdown()
        self._owns_ray = False


__all__ = ["RayBackend", "RESUME_HINT"]
