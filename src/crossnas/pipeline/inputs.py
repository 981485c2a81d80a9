"""What a run reads from outside before it writes anything: the data, and the user code it will run.

User code (a data factory, a baseline model file) is named in the user's own config; its sha256 is kept in
run.json under `code`, and a resume with a changed file is refused.
"""

from __future__ import annotations

import json
from pathlib import Path

from crossnas.errors import CrossnasError
from crossnas.usercode import check_unchanged, code_files


def code_specs(cfg) -> list[str]:
    """Every `file.py:NAME` the config names: the data factory and baseline models."""
    from crossnas.data.sources import parse_data_spec

    d = cfg.data
    factory = parse_data_spec(d.name).get("factory") or d.factory
    return [s for s in (factory, *cfg.baselines.models) if s]


def check_inputs(cfg, run_dir: Path, *, resume: bool):
    """(the data splits, {file: sha256} of the user code); refuses non-square images and changed code."""
    from crossnas.pipeline.config import load_splits

    code = code_files(code_specs(cfg))
    state = Path(run_dir) / "run.json"
    if resume and state.is_file():
        check_unchanged(json.loads(state.read_text()).get("code"), code, str(run_dir))
    return require_square(load_splits(cfg)), code


def require_square(splits):
    """The splits, if their images are square (the search space has one input_size)."""
    _, h, w = splits.input_shape
    if h != w:
        raise CrossnasError(f"data: images are {h}x{w} (H x W), but the search space takes one square "
                            "input_size; resize them (folder: data.size) or cost and simulate non-square "
                            "models with `crossnas evaluate` / `crossnas simulate`")
    return splits


def record_code(state, code: dict[str, str]) -> None:
    if code:
        state.data["code"] = {**state.data.get("code", {}), **code}
        state.save()
