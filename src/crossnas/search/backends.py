"""Where evaluations run: in process or in a process pool (results in the same order)."""

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


class ProcessPoolBackend(EvaluatorBackend):
    """Splits the batch into `workers` contiguous chunks; `evaluate` must be picklable."""

    def __init__(self, workers: int = 2):
        self.workers = max(1, int(workers))
        self._pool: ProcessPoolExecutor | None = None

    def map(self, evaluate: Evaluate, archs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if not archs:
            return []
        if self._pool is None:
            self._pool = ProcessPoolExecutor(self.workers)
        n = len(archs)
        k = min(self.workers, n)
        bounds = [round(i * n / k) for i in range(k + 1)]
        chunks = [archs[bounds[i]:bounds[i + 1]] for i in range(k)]
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
