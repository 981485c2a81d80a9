"""`crossnas train-supernet CONFIG --out DIR [--resume] [--device D]`: train the QAT one-shot supernet.

CONFIG is the crossnas YAML (`crossnas.pipeline.config`); this command reads its `data`, `space` and
`supernet` sections (SupernetTrainConfig fields).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from crossnas.threads import add_threads_option


def add_parser(sub) -> None:
    p = sub.add_parser("train-supernet", help="train the quantization-aware one-shot supernet",
                       description=__doc__.split("\n")[0])
    p.add_argument("config", type=Path, help="YAML with data / space / supernet sections")
    p.add_argument("--out", type=Path, required=True, help="output directory (checkpoint, metrics.jsonl)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    p.add_argument("--force", action="store_true",
                   help="start over in OUT (replaces only what crossnas wrote)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default=None,
                   help="override supernet.device (default: the config's value, auto when unset)")
    p.add_argument("--no-progress", action="store_true")
    add_threads_option(p)


def run(args: argparse.Namespace) -> int:
    from crossnas.pipeline.config import build_supernet, load_run_config, load_splits, resolve_space
    from crossnas.runfolder import claim
    from crossnas.supernet.train import train_supernet
    from crossnas.threads import apply_for_space

    cfg = load_run_config(args.config)
    train_cfg = cfg.supernet.model_copy(update={"device": args.device}) if args.device else cfg.supernet
    from crossnas.pipeline.inputs import require_square

    with claim(args.out, "supernet", resume=args.resume, force=args.force):
        splits = require_square(load_splits(cfg))
        space = resolve_space(cfg, splits.input_size)
        apply_for_space(args.threads or cfg.threads, space, splits.in_channels, train_cfg.batch_size)
        supernet = build_supernet(cfg, splits, space)
        hist = train_supernet(supernet, splits, train_cfg, args.out,
                              resume=args.resume and (args.out / "checkpoint.pt").exists(),
                              progress=not args.no_progress, augment=cfg.augment)
    if hist:
        last = {k: v for k, v in hist[-1].items() if k != "val"}
        print(json.dumps(last))
    print(f"checkpoint: {args.out / 'checkpoint.pt'}")
    return 0
