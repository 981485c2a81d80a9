"""Validate before work: everything a run will need is checked before its first stage runs.

Data availability (crossnas.pipeline.inputs reads the splits), baseline names and their
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


def check_before_work(cfg, done: set[str], splits) -> None:
    """Raise a CrossnasError naming the field for anything a pending stage would fail on (the data was
    read by `crossnas.pipeline.inputs.check_inputs`)."""
    pending = [s for s in STAGES if s not in done]
    if "baselines" in pending:
        _check_baselines(cfg, splits)
    if "retrain" in pending:
        _check_select(cfg)
    if "search" in pending:
        _check_backend(cfg.search)


def _check_baselines(cfg, splits) -> None:
    from crossnas.models import get_model
    from crossnas.usercode import is_code_spec

    bc = cfg.baselines
    for name in bc.models:
        # the arguments stage_baselines passes: a user's model gets width_mult only when it is given
        kwargs = {} if is_code_spec(name) and name not in bc.width_mult else {
            "width_mult": bc.width_mult.get(name, 1.0)}
        try:
            get_model(name, splits.in_channels, splits.num_classes, splits.input_size, **kwargs)
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
    # a budget or floor relative to a baseline needs that baseline trained in this run
    relative = {f"select.budget.{m}": getattr(b, "relative_to", None) for m, b in sel.budget.items()}
    relative["select.min_accuracy"] = getattr(sel.min_accuracy, "relative_to", None)
    for field, name in relative.items():
        if name is not None and name not in cfg.baselines.models:
            raise CrossnasError(f"{field}.relative_to: baseline {name!r} is not in baselines.models "
                                f"({cfg.baselines.models})")


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
