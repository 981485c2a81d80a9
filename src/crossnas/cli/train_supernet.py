"""`crossnas train-supernet CONFIG --out DIR [--resume] [--device D]`: train the QAT one-shot supernet.

CONFIG is YAML with sections `data` (name, seed, val_fraction), `space` (preset) and `supernet`
(SupernetTrainConfig fields).
"""

from __future__ import annotations

import argparse
import inspect
import json
from pathlib import Path

from crossnas.errors import CrossnasError, validated


def add_parser(sub) -> None:
    p = sub.add_parser("train-supernet", help="train the quantization-aware one-shot supernet",
                       description=__doc__.split("\n")[0])
    p.add_argument("config", type=Path, help="YAML with data / space / supernet sections")
    p.add_argument("--out", type=Path, required=True, help="output directory (checkpoint, metrics.jsonl)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default=None,
                   help="override supernet.device (default: the config's value, auto when unset)")
    p.add_argument("--no-progress", action="store_true")


# the sections `crossnas run` adds are read by crossnas.pipeline.config; these commands ignore them
SECTIONS = ("name", "device", "data", "space", "supernet", "hardware", "search", "select", "retrain",
            "baselines", "final")


def load_config(path: Path, required: tuple[str, ...] = ("data", "space", "supernet")) -> dict:
    """One YAML config for train-supernet and search; each command reads the sections it needs."""
    import yaml

    if not path.is_file():
        raise CrossnasError(f"config: file {path} not found")
    try:
        cfg = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise CrossnasError(f"config: {path} is not valid YAML ({e})") from None
    if not isinstance(cfg, dict):
        raise CrossnasError(f"config: {path} must be a mapping with data/space/supernet sections")
    unknown = set(cfg) - set(SECTIONS)
    if unknown:
        raise CrossnasError(f"config: unknown sections {sorted(unknown)} (expected {', '.join(SECTIONS)})")
    for k in required:
        if not isinstance(cfg.get(k) or {}, dict):
            raise CrossnasError(f"config.{k}: expected a mapping")
    return cfg


def _call_filtered(fn, *args, **kwargs):
    params = inspect.signature(fn).parameters
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return fn(*args, **kwargs)
    return fn(*args, **{k: v for k, v in kwargs.items() if k in params})


def run(args: argparse.Namespace) -> int:

    from crossnas.supernet import Supernet
    from crossnas.supernet.train import SupernetTrainConfig, train_supernet

    cfg = load_config(args.config)
    data_cfg, space_cfg = dict(cfg.get("data") or {}), dict(cfg.get("space") or {})
    sn_cfg = dict(cfg.get("supernet") or {})
    if args.device:
        sn_cfg["device"] = args.device
    train_cfg = validated(SupernetTrainConfig, sn_cfg, "config.supernet", sep=".")
    try:
        from crossnas.data import load_dataset
        from crossnas.space import get_space_preset
    except ImportError as e:
        raise CrossnasError(f"train-supernet needs crossnas.data and crossnas.space presets ({e})") from None
    if "name" not in data_cfg:
        raise CrossnasError("config.data.name: expected a dataset name")
    name = data_cfg.pop("name")
    splits = _call_filtered(load_dataset, name, **data_cfg)
    preset = space_cfg.get("preset") or space_cfg.get("name")
    if not preset:
        raise CrossnasError("config.space.preset: expected a space preset name")
    space = _call_filtered(get_space_preset, preset, input_size=splits.input_size)
    supernet = Supernet.from_space(space, splits.in_channels, splits.num_classes, splits.input_size)
    hist = train_supernet(supernet, splits, train_cfg, args.out, resume=args.resume,
                          progress=not args.no_progress)
    if hist:
        last = {k: v for k, v in hist[-1].items() if k != "val"}
        print(json.dumps(last))
    print(f"checkpoint: {args.out / 'checkpoint.pt'}")
    return 0
