"""`crossnas search CONFIG --supernet CKPT --out DIR [--resume]`: joint cross-layer search.

CONFIG is the train-supernet YAML plus `hardware` (preset or file, and `set` overrides) and `search`
(strategy, budget, pop_size, seed, objectives, constraints, fidelity, val_limit, workers).
Selection uses the validation split only.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from crossnas.cli.train_supernet import _call_filtered, load_config
from crossnas.errors import CrossnasError

SEARCH_KEYS = {"strategy", "budget", "pop_size", "seed", "objectives", "constraints", "fidelity",
               "val_limit", "bn_batches", "workers"}


def add_parser(sub) -> None:
    p = sub.add_parser("search", help="joint search of network, bits and circuit genes",
                       description=__doc__.split("\n")[0])
    p.add_argument("config", type=Path)
    p.add_argument("--supernet", type=Path, required=True, help="checkpoint.pt from train-supernet")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--resume", action="store_true", help="continue from OUT/search_checkpoint.json")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="cpu")
    p.add_argument("--no-progress", action="store_true")


def run(args: argparse.Namespace) -> int:
    from crossnas.data import load_dataset
    from crossnas.device import resolve_device
    from crossnas.hardware import load_hardware
    from crossnas.search import search
    from crossnas.search.backends import LocalBackend, ProcessPoolBackend
    from crossnas.search.crosslayer import CrossLayerEvaluator
    from crossnas.search.plots import plot_hypervolume, plot_pareto
    from crossnas.space import get_space_preset
    from crossnas.supernet import Supernet
    from crossnas.supernet.train import load_checkpoint

    cfg = load_config(args.config, required=("data", "space"))
    sc = dict(cfg.get("search") or {})
    unknown = set(sc) - SEARCH_KEYS
    if unknown:
        raise CrossnasError(f"config.search: unknown keys {sorted(unknown)} (expected {sorted(SEARCH_KEYS)})")
    if not args.supernet.is_file():
        raise CrossnasError(f"--supernet: file {args.supernet} not found (train one with train-supernet)")
    data_cfg = dict(cfg["data"])
    if "name" not in data_cfg:
        raise CrossnasError("config.data.name: expected a dataset name")
    splits = _call_filtered(load_dataset, data_cfg.pop("name"), **data_cfg)
    space = get_space_preset(cfg["space"].get("preset"), input_size=splits.input_size)
    hw_cfg = dict(cfg.get("hardware") or {})
    hw = load_hardware(hw_cfg.get("preset", "mnsim-default"), hw_cfg.get("set"))
    supernet = Supernet.from_space(space, splits.in_channels, splits.num_classes, splits.input_size)
    load_checkpoint(supernet, args.supernet)
    dev = resolve_device(args.device)
    supernet.to(dev)
    shape = (splits.in_channels, splits.input_size, splits.input_size)
    evaluator = CrossLayerEvaluator(space, supernet, splits.train, splits.val, hw, shape,
                                    fidelity=sc.get("fidelity", "fast"), val_limit=sc.get("val_limit", 1000),
                                    bn_batches=sc.get("bn_batches", 10), seed=sc.get("seed", 0),
                                    device=str(dev))
    workers = int(sc.get("workers", 1))
    backend = ProcessPoolBackend(workers=workers) if workers > 1 else LocalBackend()
    args.out.mkdir(parents=True, exist_ok=True)
    ckpt = args.out / "search_checkpoint.json"
    if ckpt.exists() and not args.resume:
        raise CrossnasError(f"--out: {ckpt} exists; pass --resume to continue it or choose another folder")
    result = search(space, evaluator, objectives=sc.get("objectives"), strategy=sc.get("strategy", "nsga2"),
                    budget=int(sc.get("budget", 200)), seed=int(sc.get("seed", 0)),
                    constraints=sc.get("constraints"), checkpoint=ckpt, backend=backend,
                    pop_size=int(sc.get("pop_size", 20)), progress=not args.no_progress,
                    log_path=args.out / "evaluations.jsonl")
    result.to_json(args.out / "pareto.json")
    result.to_csv(args.out / "pareto.csv", which="pareto")
    result.to_csv(args.out / "history.csv", which="history")
    plot_pareto(result, args.out / "pareto.png")
    plot_hypervolume(result, args.out / "hypervolume.png")
    print(f"{len(result.pareto)} designs on the Pareto front; results in {args.out}")
    return 0
