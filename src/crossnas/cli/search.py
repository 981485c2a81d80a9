"""`crossnas search CONFIG --supernet CKPT --out DIR [--resume]`: cross-layer search from a trained supernet.

CONFIG is the crossnas YAML (`crossnas.pipeline.config`); this command reads `data`, `space`, `hardware`
and `search` (`crossnas.search.config.SearchConfig`: strategy, budget, mode joint|two-stage, objectives,
constraints, fidelity, final_fidelity, backend, ...). Selection uses the validation split only; the Pareto
set is re-evaluated at `final_fidelity` before it is written.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from crossnas.errors import CrossnasError
from crossnas.threads import add_threads_option


def add_parser(sub) -> None:
    p = sub.add_parser("search", help="search network, bits and circuit genes (joint or two-stage)",
                       description=__doc__.split("\n")[0])
    p.add_argument("config", type=Path)
    p.add_argument("--supernet", type=Path, required=True, help="checkpoint.pt from train-supernet")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--resume", action="store_true", help="continue the search checkpointed in OUT")
    p.add_argument("--force", action="store_true",
                   help="start over in OUT (replaces only what crossnas wrote)")
    p.add_argument("--backend", choices=("local", "process", "ray"), default=None,
                   help="override search.backend")
    p.add_argument("--workers", type=int, default=None, help="override search.workers")
    p.add_argument("--address", default=None, help="override search.address (ray cluster)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--no-progress", action="store_true")
    add_threads_option(p)


def run(args: argparse.Namespace) -> int:
    from crossnas.device import resolve_device
    from crossnas.pipeline.config import (
        build_supernet,
        load_run_config,
        load_splits,
        resolve_hardware,
        resolve_space,
    )
    from crossnas.search.config import load_search_config
    from crossnas.search.crosslayer import run_cross_layer_search
    from crossnas.supernet.train import load_checkpoint
    from crossnas.threads import apply_for_space

    cfg = load_run_config(args.config)
    overrides = {k: v for k, v in (("backend", args.backend), ("workers", args.workers),
                                   ("address", args.address)) if v is not None}
    search_cfg = load_search_config({**cfg.search.model_dump(), **overrides}) if overrides else cfg.search
    if not args.supernet.is_file():
        raise CrossnasError(f"--supernet: file {args.supernet} not found (train one with train-supernet)")
    from crossnas.pipeline.inputs import require_square
    from crossnas.runfolder import claim

    with claim(args.out, "search", resume=args.resume, force=args.force):
        splits = require_square(load_splits(cfg))
        space = resolve_space(cfg, splits.input_size)
        apply_for_space(args.threads or cfg.threads, space, splits.in_channels, search_cfg.batch_size)
        supernet = build_supernet(cfg, splits, space)
        load_checkpoint(supernet, args.supernet)
        dev = resolve_device(args.device)
        supernet.to(dev)
        result = run_cross_layer_search(space, supernet, splits, resolve_hardware(cfg), search_cfg, args.out,
                                        resume=args.resume, device=str(dev), progress=not args.no_progress)
    final = result.meta.get("final", {})
    print(f"{len(result.pareto)} designs on the Pareto front ({result.n_evaluations} evaluations, "
          f"{search_cfg.mode}; front re-evaluated at fidelity {final.get('fidelity')} on "
          f"{final.get('chips')} chips); results in {args.out}")
    return 0
