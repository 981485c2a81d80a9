"""What `crossnas run` says before and between stages: the chip, the fields space genes take over from
the hardware settings (the genes win), and one header per stage with its plan (`pipeline.plan`)."""

from __future__ import annotations

from typing import Any

from crossnas.pipeline.plan import gene_overrides, stage_plans


def announce(rep: Any, p: Any) -> None:
    """The run's first lines: folder, device, the starting chip, gene-over-hardware notices."""
    cfg = p.cfg
    rep.note(f"crossnas run {cfg.name or p.run_dir.name}: folder {p.run_dir}, device {p.device}, "
             f"chip {p.hardware.name}")
    for line in gene_overrides(cfg):
        rep.note(line)


def stage_header(rep: Any, p: Any, name: str) -> None:
    """`== stage: plan`, or that the stage is done (skipped on resume)."""
    if p.state.done(name):
        rep.header(name, "done earlier, skipped")
        return
    splits = p.splits if name != "report" else None
    space = p.space if name in ("supernet", "search") else None
    rep.header(name, stage_plans(p.cfg, splits, space)[name])
