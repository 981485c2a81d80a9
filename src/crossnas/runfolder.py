"""A run folder is a run folder: a marker naming its kind and the files crossnas wrote, and a lock.

`claim(out, kind, resume=, force=)` is called by `crossnas run`, `train-supernet` and `search` before any
work. It refuses a file or an unwritable path, a folder another crossnas process holds (exclusive
`fcntl.flock` on `.crossnas.lock`, the message names the holder's pid), a non-empty folder that is not a
crossnas folder of this kind, and starting over where state exists, unless `--resume` continues it or
`--force` replaces it. `--force` removes only what the marker lists (the files crossnas wrote and the
top-level names it reserved when it first claimed the folder); a user's own files are never touched, and
a user file where crossnas would write is refused by name.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
from pathlib import Path

from crossnas.errors import CrossnasError, short

MARKER = ".crossnas-run.json"
LOCK = ".crossnas.lock"
FORMAT = 1
# the top-level names each kind writes: the only places --force may replace
OWNED = {
    "run": ("run.json", "config.yaml", "supernet", "search", "designs", "baselines", "final", "final.json",
            "report.md", "report.html", "report", "run.log"),
    "supernet": ("checkpoint.pt", "checkpoint.pt.tmp", "metrics.jsonl"),
    "search": ("search_checkpoint.json", "evaluations.jsonl", "front_exact.json", "pareto.json", "pareto.csv",
               "history.csv", "pareto.png", "hypervolume.png", "stage1", "stage2"),
}
# a file whose presence means the folder holds resumable state
STATE = {"run": ("run.json",), "supernet": ("checkpoint.pt",),
         "search": ("search_checkpoint.json", "stage1/search_checkpoint.json")}
COMMAND = {"run": "crossnas run", "supernet": "crossnas train-supernet", "search": "crossnas search"}


def _is_tmp(name: str) -> bool:
    return name.endswith(".tmp") or ".tmp-" in name or ".old-" in name


class RunFolder:
    """A claimed folder: holds the lock until `release()`; `record()` refreshes the marker's file list."""

    def __init__(self, path: Path, kind: str, lock_fh, marker: dict, created: bool = False):
        self.path, self.kind, self._lock, self.marker = path, kind, lock_fh, marker
        self.created = created  # made by this claim: removed again if the work fails before writing

    @property
    def marker_path(self) -> Path:
        return self.path / MARKER

    def record(self) -> None:
        files = set(self.marker.get("files", []))
        for name in self.marker["reserved"]:
            p = self.path / name
            if p.is_file():
                files.add(name)
            elif p.is_dir():
                files.update(str(f.relative_to(self.path)) for f in p.rglob("*") if f.is_file())
        self.marker["files"] = sorted(f for f in files if (self.path / f).is_file())
        _write_marker(self.marker_path, self.marker)

    def release(self) -> None:
        if self._lock is not None:
            try:
                self.record()
            finally:
                fcntl.flock(self._lock, fcntl.LOCK_UN)
                self._lock.close()
                self._lock = None

    def __enter__(self) -> RunFolder:
        return self

    def __exit__(self, exc_type, *exc) -> None:
        self.release()
        if exc_type is not None and self.created and self.path.is_dir() and \
                {p.name for p in self.path.iterdir()} <= {MARKER, LOCK}:
            shutil.rmtree(self.path, ignore_errors=True)  # bad input leaves no folder behind


def _write_marker(path: Path, marker: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(marker, indent=1))
    os.replace(tmp, path)


def _read_marker(path: Path) -> dict | None:
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CrossnasError(f"{path}: damaged run marker ({short(str(e))}) (restore it, or delete it if "
                            "the folder is yours)") from None
    ok = (isinstance(data, dict) and isinstance(data.get("kind"), str) and isinstance(data.get("format"), int)
          and isinstance(data.get("files"), list) and isinstance(data.get("reserved"), list))
    if not ok:
        raise CrossnasError(f"{path}: not a crossnas run marker (restore it, or delete it if the folder is "
                            "yours)")
    if data["format"] > FORMAT:
        raise CrossnasError(f"{path}: format {data['format']} is newer than this crossnas reads ({FORMAT}) "
                            "(update crossnas)")
    return data


def _lock(path: Path):
    lock_path = path / LOCK
    try:
        fh = open(lock_path, "a+")
    except OSError as e:
        raise CrossnasError(f"{path}: cannot write there ({e.strerror}) (choose a writable folder for --out)"
                            ) from None
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.seek(0)
        pid = fh.read().strip() or "unknown"
        fh.close()
        raise CrossnasError(f"{path}: in use by another crossnas process (pid {short(pid, 20)}) (wait for it "
                            "to finish or choose another folder)") from None
    fh.seek(0)
    fh.truncate()
    fh.write(str(os.getpid()))
    fh.flush()
    return fh


def _remove_listed(path: Path, marker: dict) -> None:
    """--force: delete what crossnas wrote here (listed files, reserved names), nothing else."""
    for rel in marker.get("files", []):
        f = path / rel
        if f.is_file() and path in f.resolve().parents:
            f.unlink()
    for name in marker.get("reserved", []):
        p = path / name
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        elif p.exists() or p.is_symlink():
            p.unlink()


def claim(out: str | Path, kind: str, *, resume: bool = False, force: bool = False) -> RunFolder:
    """Check and lock `out` for a `kind` ("run", "supernet", "search") before any work; see the module doc."""
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise CrossnasError(f"{path}: is a file, not a folder (choose a folder for --out)")
    created = not path.exists()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise CrossnasError(f"{path}: cannot create the folder ({e.strerror}) (choose a writable place for "
                            "--out)") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise CrossnasError(f"{path}: not writable (choose a writable folder for --out)")
    fh = _lock(path)
    try:
        marker = _check(path, kind, _read_marker(path / MARKER), resume=resume, force=force)
        folder = RunFolder(path, kind, fh, marker, created)
        folder.record()
    except BaseException:
        fcntl.flock(fh, fcntl.LOCK_UN)
        fh.close()
        raise
    return folder


def _check(path: Path, kind: str, marker: dict | None, *, resume: bool, force: bool) -> dict:
    from crossnas.pipeline.state import software_versions

    cmd = COMMAND[kind]
    has_state = any((path / s).exists() for s in STATE[kind])
    entries = sorted(p.name for p in path.iterdir() if p.name not in (MARKER, LOCK) and not _is_tmp(p.name))
    if marker is not None and marker["kind"] != kind:
        if not force:
            raise CrossnasError(f"{path}: holds a crossnas {marker['kind']} folder, not a {kind} folder "
                                f"(choose another folder, or pass --force to replace what crossnas wrote)")
        _remove_listed(path, marker)
        marker = None
    elif marker is not None:
        if force:
            _remove_listed(path, marker)
            marker = None
        elif has_state and not resume:
            raise CrossnasError(f"{path}: already holds a {kind} with state (pass --resume to continue it, "
                                "--force to start over, or choose another folder)")
    elif entries and not force and not (resume and has_state):  # no marker: maybe a user's folder
        more = " ..." if len(entries) > 1 else ""
        raise CrossnasError(f"{path}: not empty and not a crossnas {kind} folder (holds "
                            f"{short(entries[0], 60)}{more}) (choose an empty or new folder, or pass "
                            "--force to write beside those files)")
    if marker is None:
        adopt = resume and has_state and not force  # a run folder from before markers existed
        clash = [n for n in OWNED[kind] if (path / n).exists()]
        if clash and not adopt:
            raise CrossnasError(f"{path / clash[0]}: not written by crossnas; {cmd} would write there (move "
                                "it away or choose another folder)")
        marker = {"format": FORMAT, "kind": kind, "crossnas": software_versions()["crossnas"],
                  "reserved": list(OWNED[kind]), "files": []}
    return marker
