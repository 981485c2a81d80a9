"""`crossnas search CONFIG --supernet CKPT --out DIR [--resume]`: cross-layer search from a trained supernet.

CONFIG is the train-supernet YAML plus `hardware` (preset or file, and `set` overrides) and `search`
(`crossnas.search.config.SearchConfig`: strategy, budget, mode joint|two-stage, objectives, constraints,
fidelity, final_fidelity, backend, ...). Selection uses the validation split only; the Pareto set is
re-evaluated at `final_fidelity` before it is written.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from crossnas.cli.train_supernet import _call_filtered, load_config
from crossnas.errors import CrossnasError


def add_parser(sub) -> None:
    p = sub.add_parser("search", help="search network, bits and circuit genes (joint or two-stage)",
                       description=__doc__.split("\n")[0])
    p.add_argument("config", type=Path)
    p.add_argument("--supernet", type=Path, required=True, help="checkpoint.pt from train-supernet")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--resume", action="store_true", help="continue the search checkpointed in OUT")
    p.add_argument("--backend", choices=("local", "process", "ray"), default=None,
                   help="override search.backend")
    p.add_argument("--workers", type=int, default=None, help="override search.workers")
    p.add_argument("--address", default=None, help="override search.address (ray cluster)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--no-progress", action="store_true")


def run(args: argparse.Namespace) -> int:
    from crossnas.data import load_dataset
    from crossnas.device import resolve_device
    from crossnas.hardware import load_hardware
    from crossnas.search.config import load_search_config
    from crossnas.search.crosslayer import run_cross_layer_search
    from crossnas.space import get_space_preset, load_space
    from crossnas.supernet import Supernet
    from crossnas.supernet.train import load_checkpoint

    cfg = load_config(args.config, required=("data", "space"))
    overrides = {k: v for k, v in (("backend", args.backend), ("workers", args.workers),
                                   ("address", args.address)) if v is not None}
    search_cfg = load_search_config({**(cfg.get("search") or {}), **overrides})
    if not args.supernet.is_file():
        raise CrossnasError(f"--supernet: file {args.supernet} not found (train one with train-supernet)")
    data_cfg = dict(cfg["data"])
    if "name" not in data_cfg:
        raise CrossnasError("config.data.name: expected a dataset name")
    splits = _call_filtered(load_dataset, data_cfg.pop("name"), **data_cfg)
    space_cfg = cfg["space"] or {}
    if space_cfg.get("file"):
        space = load_space(space_cfg["file"], input_size=splits.input_size)
    elif space_cfg.get("preset"):
        space = get_space_preset(space_cfg["preset"], input_size=splits.input_size)
    else:
        raise CrossnasError("config.space: expected a preset or a file")
    hw_cfg = dict(cfg.get("hardware") or {})
    hw = load_hardware(hw_cfg.get("preset", "mnsim-default"), hw_cfg.get("set"))
    supernet = Supernet.from_space(space, splits.in_channels, splits.num_classes, splits.input_size)
    load_checkpoint(supernet, args.supernet)
    dev = resolve_device(args.device)
    supernet.to(dev)
    result = run_cross_layer_search(space, supernet, splits, hw, search_cfg, args.out, resume=args.resume,
                                    device=str(dev), progress=not args.no_progress)
    final = result.meta.get("final", {})
    print(f"{len(result.pareto)} designs on the Pareto front ({result.n_evaluations} evaluations, "
          f"{search_cfg.mode}; front re-evaluated at fidelity {final.get('fidelity')} on "
          f"{final.get('chips')} chips); results in {args.out}")
    return 0
