"""Validate before work: everything a run will need is checked before its first stage runs.

Data availability (the splits are loaded here and handed to the pipeline), baseline names and their
arguments, the selection metric and budget against the metrics a search produces, and the Ray cluster
(a connect probe). A check is skipped when every stage that needs it is already done, so a finished
search resumes though its cluster went away.
"""

from __future__ import annotations

from pathlib import Path

from crossnas.errors import CrossnasError
from crossnas.pipeline.state import STAGES, read_state


def done_stages(run_dir: Path, resume: bool) -> set[str]:
    path = run_dir / "run.json"
    if not (resume and path.exists()):
        return set()
    return {s for s, rec in read_state(path)["stages"].items() if rec["status"] == "done"}


def check_before_work(cfg, done: set[str]):
    """Raise a CrossnasError naming the field for anything a pending stage would fail on; returns the
    data splits (None when no pending stage reads data)."""
    pending = [s for s in STAGES if s not in done]
    splits = None
    if any(s != "report" for s in pending):
        from crossnas.pipeline.config import load_splits

        try:
            splits = load_splits(cfg)
        except CrossnasError as e:
            msg = str(e)
            raise CrossnasError(msg if msg.startswith("data") else f"data: {msg}") from None
    if "baselines" in pending:
        _check_baselines(cfg, splits)
    if "retrain" in pending:
        _check_select(cfg)
    if "search" in pending:
        _check_backend(cfg.search)
    return splits


def _check_baselines(cfg, splits) -> None:
    from crossnas.models import get_model

    bc = cfg.baselines
    extra = sorted(set(bc.width_mult) - set(bc.models))
    if extra:
        raise CrossnasError(f"baselines.width_mult: {extra[0]!r} is not one of baselines.models {bc.models}")
    for name in bc.models:
        try:
            get_model(name, splits.in_channels, splits.num_classes, splits.input_size,
                      width_mult=bc.width_mult.get(name, 1.0))
        except CrossnasError as e:
            raise CrossnasError(f"baselines.models: {e}") from None


def _check_select(cfg) -> None:
    from crossnas.search.config import METRICS as known

    sel = cfg.select
    if sel.metric not in known:
        raise CrossnasError(f"select.metric: {sel.metric!r} is not a search metric (have {', '.join(known)})")
    bad = [m for m in sel.budget if m not in known]
    if bad:
        raise CrossnasError(f"select.budget: {bad[0]!r} is not a search metric (have {', '.join(known)})")
    if sel.rule == "best_under" and not sel.budget:
        raise CrossnasError("select.budget: rule best_under needs e.g. {edp_js: 1.0e-9}")


def _check_backend(scfg) -> None:
    if scfg.backend != "ray":
        return
    import importlib.util

    if importlib.util.find_spec("ray") is None:
        raise CrossnasError("search.backend: ray needs the ray package (pip install 'crossnas[ray]')")
    addr = scfg.address
    if addr and addr != "auto" and not addr.startswith("ray://"):
        from crossnas.search.ray_backend import _check_reachable

        try:
            _check_reachable(addr, timeout=3.0)
        except CrossnasError as e:
            raise CrossnasError(f"search.{e}") from None
