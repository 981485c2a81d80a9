"""Evaluation store: ordered records, a JSONL log, and atomic JSON writes."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np


def atomic_write(path: str | os.PathLike, text: str) -> None:
    """Write `text` to a temp file beside `path`, then rename it over `path`: never half-written, no temp
    file left behind; an unwritable place or a folder at `path` is a CrossnasError naming it."""
    from crossnas.errors import CrossnasError

    path = Path(path)
    if path.is_dir():
        raise CrossnasError(f"{path}: is a folder (give a file name)")
    tmp = path.with_name(path.name + ".tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(text)
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise CrossnasError(f"{path}: cannot write ({e.strerror}) (check the folder and its permissions)"
                            ) from None


def atomic_savefig(fig, path: str | os.PathLike, dpi: int = 100) -> Path:
    """tight_layout, write a matplotlib figure as PNG to a hidden temp file beside `path`, rename over it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        fig.tight_layout()
        fig.savefig(tmp, dpi=dpi, format="png")
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


class Store:
    """Records {genome, key, arch, metrics, wall_s, generation}, unique by canonical key."""

    def __init__(self, log_path: str | os.PathLike | None = None, records: list[dict] | None = None):
        self.records: list[dict[str, Any]] = []
        self.index: dict[str, int] = {}
        self.log_path = Path(log_path) if log_path else None
        for r in records or []:
            self._put(r)

    def __len__(self) -> int:
        return len(self.records)

    def __contains__(self, key: str) -> bool:
        return key in self.index

    def get(self, key: str) -> dict[str, Any] | None:
        i = self.index.get(key)
        return None if i is None else self.records[i]

    def _put(self, rec: dict[str, Any]) -> None:
        if rec["key"] in self.index:
            raise ValueError(f"genome {rec['key']} already stored")
        self.index[rec["key"]] = len(self.records)
        self.records.append(rec)

    def add(self, genome: np.ndarray, key: str, arch: dict, metrics: dict, wall_s: float,
            generation: int, log: bool = True) -> dict[str, Any]:
        rec = {"genome": [int(v) for v in genome], "key": key, "arch": arch, "metrics": dict(metrics),
               "wall_s": float(wall_s), "generation": int(generation)}
        self._put(rec)
        if log and self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.log_path, "a") as fh:
                fh.write(json.dumps(rec) + "\n")
        return rec
