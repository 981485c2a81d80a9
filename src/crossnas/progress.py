"""Progress for every stage, one module: stage headers, per-unit lines and bars.

A `Reporter` prints to a stream in one of three ways: `rich` (a live bar per task whose total and
estimate cover the whole stage), `plain` (one timestamped line per unit of work -- an epoch, a generation,
a batch of evaluations, a design -- with the running total and an estimate of the stage's time left;
what a log file or a non-terminal gets), or `off`. Whatever the mode, every header and unit line is also
appended to the log file when one is given (the run folder's `run.log`).

Library code asks `task_for(progress, label, total, unit)`: `progress` is a bool (make a task on the
active reporter, or none) or a `Task` a caller opened for the whole stage. The pipeline installs its
reporter with `use(reporter)`; without one a default `auto` reporter (rich on a terminal, else plain)
is used. The clock is injectable so tests see one line per unit of work whatever the wall time.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

MODES = ("auto", "rich", "plain", "off")


def fmt_duration(sec: float) -> str:
    sec = max(0.0, float(sec))
    if sec < 60:
        return f"{sec:.0f}s"
    m, s = divmod(int(round(sec)), 60)
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"


class Task:
    """Work of a known size (`total` in `unit`s). `advance` moves the bar; `line` reports a finished
    unit of work (printed at once in plain mode, logged in every mode)."""

    def __init__(self, reporter: Reporter, label: str, total: int, unit: str, done: int = 0):
        self.reporter, self.label, self.unit = reporter, label, unit
        self.total, self.completed, self._start_done = max(int(total), 0), int(done), int(done)
        self.t0 = reporter.clock()
        self._bar = reporter._add_bar(self) if reporter.mode == "rich" else None

    def advance(self, n: int = 1, **fields: Any) -> None:
        self.completed = min(self.total, self.completed + n) if self.total else self.completed + n
        if self._bar is not None:
            self.reporter._update_bar(self, fields)

    def left_s(self) -> float | None:
        """Estimated seconds to finish the task, from the pace of the work done in this session."""
        done = self.completed - self._start_done
        if done <= 0 or not self.total:
            return None
        return (self.reporter.clock() - self.t0) / done * (self.total - self.completed)

    def line(self, text: str) -> None:
        elapsed = self.reporter.clock() - self.t0
        left = self.left_s()
        eta = "" if left is None else f", ~{fmt_duration(left)} left in the stage"
        total = f"{self.completed}/{self.total}" if self.total else f"{self.completed}"
        total += f" {self.unit}"
        self.reporter.emit(f"{self.label}: {text} [{total}, {fmt_duration(elapsed)} elapsed{eta}]")

    def close(self) -> None:
        if self._bar is not None:
            self.reporter._remove_bar(self)
            self._bar = None


class Reporter:
    def __init__(self, mode: str = "auto", stream: IO[str] | None = None, *,
                 clock: Callable[[], float] = time.time, log_path: str | Path | None = None):
        if mode not in MODES:
            raise ValueError(f"progress mode: expected one of {MODES}, got {mode!r}")
        self.stream = stream if stream is not None else sys.stdout
        if mode == "auto":
            mode = "rich" if getattr(self.stream, "isatty", lambda: False)() else "plain"
        self.mode, self.clock = mode, clock
        self.log_path = Path(log_path) if log_path is not None else None
        self._progress = None
        self._bars = 0

    # --- lines ----------------------------------------------------------------------------------
    def _stamp(self) -> str:
        return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.clock()))

    def emit(self, text: str) -> None:
        """One timestamped line: to the stream (plain mode; above the bars in rich mode) and the log."""
        line = f"{self._stamp()} {text}"
        if self.mode == "plain":
            self.stream.write(line + "\n")
            self.stream.flush()
        elif self.mode == "rich":
            self._console().print(line, markup=False, highlight=False)
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.log_path, "a") as f:
                f.write(line + "\n")

    def header(self, stage: str, plan: str) -> None:
        self.emit(f"== {stage}: {plan}")

    def note(self, text: str) -> None:
        self.emit(text)

    def task(self, label: str, total: int, unit: str, done: int = 0) -> Task:
        return Task(self, label, total, unit, done)

    # --- rich bars --------------------------------------------------------------------------------
    def _console(self):
        if self._progress is not None:
            return self._progress.console
        from rich.console import Console

        return Console(file=self.stream)

    def _add_bar(self, task: Task):
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        if self._progress is None:
            from rich.console import Console

            self._progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(),
                                      MofNCompleteColumn(), TextColumn("{task.fields[unit]}"),
                                      TextColumn("{task.fields[info]}"), TimeElapsedColumn(),
                                      TextColumn("left"), TimeRemainingColumn(),
                                      console=Console(file=self.stream))
            self._progress.start()
        self._bars += 1
        return self._progress.add_task(task.label, total=task.total or None, completed=task.completed,
                                       unit=task.unit, info="")

    def _update_bar(self, task: Task, fields: dict[str, Any]) -> None:
        info = "  ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in fields.items())
        self._progress.update(task._bar, completed=task.completed, info=info)

    def _remove_bar(self, task: Task) -> None:
        self._progress.update(task._bar, completed=task.completed)
        self._bars -= 1
        if self._bars == 0:  # the last frame keeps the finished bar on screen
            self._progress.stop()
            self._progress = None
        else:
            self._progress.remove_task(task._bar)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


_ACTIVE: list[Reporter] = []


def current() -> Reporter:
    """The reporter installed by `use`, else a fresh auto one on the present stdout."""
    return _ACTIVE[-1] if _ACTIVE else Reporter("auto")


@contextlib.contextmanager
def use(reporter: Reporter) -> Iterator[Reporter]:
    _ACTIVE.append(reporter)
    try:
        yield reporter
    finally:
        _ACTIVE.remove(reporter)
        reporter.close()


@contextlib.contextmanager
def task_for(progress: bool | Task | None, label: str, total: int, unit: str,
             done: int = 0) -> Iterator[Task | None]:
    """The caller's stage task (not closed here), a new task on the active reporter, or None."""
    if isinstance(progress, Task):
        yield progress
        return
    if not progress:
        yield None
        return
    t = current().task(label, total, unit, done)
    try:
        yield t
    finally:
        t.close()
