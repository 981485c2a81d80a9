"""User code named as `path/to/file.py:NAME` (a data factory, a model class or factory) and its hash.

Code runs only from a file the user names in their own command or config, never from a path read out of a
run folder or a design; a run records each file's sha256 so a resume with a changed file is refused.
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from crossnas.errors import CrossnasError


def is_code_spec(spec: object) -> bool:
    """True for `something.py:NAME`."""
    return isinstance(spec, str) and ":" in spec and spec.rsplit(":", 1)[0].endswith(".py")


def split_spec(spec: str, what: str) -> tuple[Path, str]:
    if not is_code_spec(spec) or not spec.rsplit(":", 1)[1]:
        raise CrossnasError(f"{what}: expected path/to/file.py:NAME, got {spec!r}")
    path, name = spec.rsplit(":", 1)
    return Path(path), name


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    """sha256 of a file's bytes, read in chunks: user code, space files, checkpoints, design files."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def load_callable(spec: str, what: str) -> Callable[..., Any]:
    """Import `file.py` (a fresh module each time) and return its callable NAME."""
    path, name = split_spec(spec, what)
    if not path.is_file():
        raise CrossnasError(f"{what}: {path}: file not found")
    mod_name = f"_crossnas_user_{hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:12]}"
    imp_spec = importlib.util.spec_from_file_location(mod_name, path)
    mod = importlib.util.module_from_spec(imp_spec)
    sys.modules[mod_name] = mod  # dataclasses and pickling look the module up by name
    try:
        imp_spec.loader.exec_module(mod)
    except Exception as e:  # noqa: BLE001 - user code
        sys.modules.pop(mod_name, None)
        raise CrossnasError(f"{what}: {path}: cannot import ({e.__class__.__name__}: {e})") from None
    fn = getattr(mod, name, None)
    if not callable(fn):
        raise CrossnasError(f"{what}: {path}: no callable {name!r}")
    return fn


def call_with_matching(fn: Callable[..., Any], offered: dict[str, Any], extra: dict[str, Any], what: str,
                       hint: str = "give others with --model-arg {name}=VALUE"):
    """Call `fn` with the `offered` keywords its signature names (all of them if it takes **kwargs) plus
    every `extra` one; a refusal names the parameter that has no value or the argument it does not take."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return fn(**offered, **extra)
    params = sig.parameters
    var_kw = any(p.kind is p.VAR_KEYWORD for p in params.values())
    kwargs = {k: v for k, v in offered.items() if var_kw or k in params}
    unknown = [k for k in extra if not var_kw and k not in params]
    if unknown:
        raise CrossnasError(f"{what}: takes no argument {unknown[0]!r} (its parameters: "
                            f"{', '.join(params) or 'none'})")
    kwargs.update(extra)
    for p in params.values():
        if p.kind is p.POSITIONAL_ONLY and p.default is p.empty:
            raise CrossnasError(f"{what}: parameter {p.name!r} is positional-only; crossnas passes "
                                f"{', '.join(offered)} by keyword")
        named = p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        if named and p.default is p.empty and p.name not in kwargs:
            raise CrossnasError(f"{what}: parameter {p.name!r} has no value (crossnas passes "
                                f"{', '.join(offered)}; {hint.format(name=p.name)})")
    return fn(**kwargs)


def code_files(specs) -> dict[str, str]:
    """{file path: sha256} of every code spec in `specs` (files that do not exist are left to the loader)."""
    out = {}
    for s in specs:
        if is_code_spec(s):
            path, _ = split_spec(s, "code")
            if path.is_file():
                out[str(path)] = file_sha256(path)
    return out


def check_unchanged(recorded: dict[str, str] | None, now: dict[str, str], where: str) -> None:
    """Refuse a resume whose user code differs from the files the run was started with."""
    for path, sha in (recorded or {}).items():
        if path in now and now[path] != sha:
            raise CrossnasError(f"--resume: {path} changed since {where} was started (sha256 {sha[:12]}... "
                                f"now {now[path][:12]}...); restore it or start a new run folder")
