"""Reading the JSON files a run writes, with one-line errors that name the file and what to do."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from crossnas.errors import CrossnasError, short


def read_text(path: Path, what: str, hint: str) -> str:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise CrossnasError(f"{path}: not found (expected {what}) ({hint})") from None
    except IsADirectoryError:
        raise CrossnasError(f"{path}: is a folder (expected {what}) ({hint})") from None
    except OSError as e:
        raise CrossnasError(f"{path}: cannot read ({e.strerror}) ({hint})") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise CrossnasError(f"{path}: not UTF-8 text, damaged or binary (expected {what}) ({hint})") from None


def read_json(path: str | Path, what: str, *, hint: str = "restore it or start a new run folder",
              kind: type = dict) -> Any:
    """The JSON value in `path` (a `kind`, dict by default), or a CrossnasError naming the file."""
    path = Path(path)
    text = read_text(path, what, hint)
    if not text.strip():
        raise CrossnasError(f"{path}: empty (expected {what}) ({hint})")
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as e:
        bad = isinstance(e, json.JSONDecodeError)
        where = f"line {e.lineno} column {e.colno}: {e.msg}" if bad else "nested too deep"
        raise CrossnasError(f"{path}: not valid JSON, damaged or truncated ({where}) ({hint})") from None
    if not isinstance(data, kind):
        raise CrossnasError(f"{path}: expected {what}, got a JSON {type(data).__name__} ({hint})")
    return data


def read_jsonl(path: str | Path, what: str, *, hint: str = "restore it or start a new run folder") -> list:
    """One JSON value per line of `path`; a damaged line is a CrossnasError naming the file and line."""
    path = Path(path)
    rows = []
    for i, line in enumerate(read_text(path, what, hint).splitlines(), 1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as e:
            raise CrossnasError(f"{path}: line {i} is not valid JSON ({short(e.msg, 40)}) ({hint})") from None
    return rows
