"""Reading torch files without running code from them: tensors and plain data only (`weights_only=True`).

A pickle can carry any callable; `torch.load(weights_only=False)` runs it. Every checkpoint crossnas
writes holds tensors, numbers, strings, lists, tuples and dicts, so the restricted unpickler reads all
of them, and anything else is refused with an error naming the file.
"""

from __future__ import annotations

import hashlib
import pickle
import re
from pathlib import Path
from typing import Any

import torch

from crossnas.errors import CrossnasError, short


def load_tensors(path: str | Path, what: str, map_location: Any = "cpu") -> Any:
    """`torch.load(path, weights_only=True)`, or a CrossnasError naming `path` (`what`: what it should be)."""
    path = Path(path)
    if not path.is_file():
        raise CrossnasError(f"{path}: not found (expected {what})")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        text = str(e)
        m = re.search(r"[Uu]nsupported (?:global: )?GLOBAL (\S+)", text)  # not allowed, or module blocked
        if m:
            raise CrossnasError(f"{path}: refused: holds a {short(m.group(1), 60)} object, not only tensors "
                                "and plain data; loading it could run code (use only files crossnas wrote)"
                                ) from None
        m = re.search(r"WeightsUnpickler error:\s*(.+)", text)
        why = m.group(1).strip() if m else (text.strip() or "unpickling failed").splitlines()[0]
        raise CrossnasError(f"{path}: cannot read, damaged or not a torch file ({short(why)}) "
                            f"(expected {what}; recreate it)") from None
    except Exception as e:  # noqa: BLE001 - torch raises many kinds for a damaged or foreign file
        raise CrossnasError(f"{path}: cannot read, damaged or not a torch file ({e.__class__.__name__}: "
                            f"{short(str(e))}) (expected {what}; recreate it)") from None


def expect_dict(obj: Any, path: str | Path, keys: tuple[str, ...], what: str, hint: str) -> dict:
    """`obj` when it is a dict holding every key in `keys`, else a CrossnasError naming `path`."""
    if not isinstance(obj, dict) or any(k not in obj for k in keys):
        raise CrossnasError(f"{path}: not {what} (expected keys {', '.join(keys)}) ({hint})")
    return obj


def content_sha256(obj: Any) -> str:
    """sha256 over every tensor's bytes and every plain value in `obj` (dicts in key order): stored inside a
    checkpoint, it tells a garbled file (torch does not check its zip CRCs) from the one written."""
    h = hashlib.sha256()

    def walk(o: Any) -> None:
        if isinstance(o, torch.Tensor):
            h.update(f"T{o.dtype}{tuple(o.shape)}".encode())
            flat = o.detach().cpu().contiguous().reshape(-1)
            h.update(flat.view(torch.uint8).numpy().tobytes() if flat.numel() else b"")
        elif isinstance(o, dict):
            for k in sorted(o, key=str):
                h.update(f"K{k!s}".encode())
                walk(o[k])
        elif isinstance(o, (list, tuple)):
            h.update(f"L{len(o)}".encode())
            for v in o:
                walk(v)
        else:
            h.update(f"V{o!r}".encode())

    walk(obj)
    return h.hexdigest()
