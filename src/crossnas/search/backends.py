"""Where evaluations run: in process, in a process pool or on Ray actors (results in the same order).

Every backend splits a batch into the same contiguous chunks (`split_chunks`) and pins each worker to
one torch thread by default, so for a fixed seed all backends return identical metrics.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from typing import Any

Evaluate = Callable[[list[dict[str, Any]]], list[dict[str, Any]]]


class EvaluatorBackend(ABC):
    @abstractmethod
    def map(self, evaluate: Evaluate, archs: list[dict[str, Any]]) -> list[dict[str, Any]]: ...

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release workers, if any."""


class LocalBackend(EvaluatorBackend):
    def map(self, evaluate: Evaluate, archs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return list(evaluate(archs)) if archs else []


def split_chunks(items: list, workers: int) -> list[list]:
    """`min(workers, len(items))` contiguous chunks of near-equal size, in order."""
    n = len(items)
    k = min(max(1, int(workers)), n)
    bounds = [round(i * n / k) for i in range(k + 1)]
    return [items[bounds[i]:bounds[i + 1]] for i in range(k)]


def pin_torch_threads(threads: int = 1) -> None:
    """Worker initializer: a fixed torch thread count, so reductions (and results) match across backends."""
    import torch

    torch.set_num_threads(max(1, int(threads)))


class ProcessPoolBackend(EvaluatorBackend):
    """Splits the batch into `workers` contiguous chunks; `evaluate` must be picklable."""

    def __init__(self, workers: int = 2, threads_per_worker: int = 1):
        self.workers = max(1, int(workers))
        self.threads_per_worker = max(1, int(threads_per_worker))
        self._pool: ProcessPoolExecutor | None = None

    def map(self, evaluate: Evaluate, archs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if not archs:
            return []
        if self._pool is None:
            self._pool = ProcessPoolExecutor(self.workers, initializer=pin_torch_threads,
                                             initargs=(self.threads_per_worker,))
        chunks = split_chunks(archs, self.workers)
        out: list[dict[str, Any]] = []
        for res in self._pool.map(evaluate, chunks):
            out.extend(res)
        return out

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None


BACKENDS = ("local", "process", "ray")


def make_backend(kind: str = "local", workers: int = 1, address: str | None = None) -> EvaluatorBackend:
    """The backend named in a config or on the command line (`ray` needs the `distributed` extra)."""
    if kind == "local":
        return LocalBackend()
    if kind == "process":
        return ProcessPoolBackend(workers=workers)
    if kind == "ray":
        from crossnas.search.ray_backend import RayBackend

        return RayBackend(actors=workers, address=address)
    raise ValueError(f"backend: unknown {kind!r}; expected one of {', '.join(BACKENDS)}")
