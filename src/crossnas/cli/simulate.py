"""`crossnas simulate`: accuracy of a trained model on simulated analog PIM chips."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from crossnas.errors import CrossnasError
from crossnas.threads import add_threads_option


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("simulate", help="analog PIM inference accuracy of a trained model")
    p.add_argument("--design", default=None, help="saved design folder (module, weights and hardware.yaml); "
                   "instead of --model/--weights/--hardware")
    p.add_argument("--model", default=None, help="built-in name or path.py:NAME (with --weights and "
                   "--hardware); with --design: the user's model file the design was built from")
    p.add_argument("--model-arg", action="append", default=[], metavar="K=V",
                   help="extra keyword argument for --model, repeatable")
    p.add_argument("--weights", default=None, help="state_dict file (torch.save)")
    p.add_argument("--hardware", default=None,
                   help="hardware preset name or YAML overlay (with --design: replaces the design's)")
    p.add_argument("--set", action="append", default=[], metavar="K=V", help="hardware override, repeatable")
    p.add_argument("--data", required=True,
                   help="digits, fashion-mnist, cifar10, cifar100, synthetic:CxHxW:classes:n, npz:FILE, "
                   "folder:DIR or python:FILE.py:FUNCTION")
    p.add_argument("--chips", type=int, default=5, help="chip instances (device effects redrawn)")
    p.add_argument("--fidelity", choices=["exact", "fast"], default="exact")
    p.add_argument("--kernel", choices=["auto", "int8", "float32"], default="auto",
                   help="GEMM of the exact simulation (a speed choice; auto: the faster by a probe)")
    p.add_argument("--json", default=None, help="write the result to this JSON file")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--calib-batches", type=int, default=4)
    add_threads_option(p)
    return p


def run(args) -> int:
    from crossnas.data import load_dataset
    from crossnas.hardware.config import load_hardware, parse_set_args
    from crossnas.models import get_model, parse_model_args

    for flag, value in (("--chips", args.chips), ("--batch-size", args.batch_size),
                        ("--calib-batches", args.calib_batches)):
        if value < 1:
            raise CrossnasError(f"{flag}: expected >= 1, got {value}")
    if args.json and Path(args.json).is_dir():
        raise CrossnasError(f"--json: {args.json} is a folder (give a file name)")
    if args.design is not None:
        from crossnas.usercode import is_code_spec

        # with --design, --model only names the user's model file the design needs (its code runs then)
        if args.weights is not None or (args.model is not None and not is_code_spec(args.model)):
            raise CrossnasError("--design: give either --design or --model/--weights, not both")
        return _run_design(args)
    missing = [f"--{k}" for k in ("model", "weights", "hardware") if getattr(args, k) is None]
    if missing:
        raise CrossnasError(f"{', '.join(missing)}: required (or give --design DIR)")
    hw = load_hardware(args.hardware, parse_set_args(args.set))
    splits = load_dataset(args.data, seed=args.seed)
    c, h, w = splits.input_shape
    model = get_model(args.model, c, splits.num_classes, (h, w), **parse_model_args(args.model_arg))
    from crossnas.safeload import load_tensors

    wpath = Path(args.weights)
    if not wpath.exists():
        raise CrossnasError(f"--weights: file not found: {wpath}")
    state = load_tensors(wpath, "a state_dict (torch.save)")
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError) as e:
        msg = " ".join(str(e).split())
        raise CrossnasError(f"--weights: does not match model {args.model!r}: {msg[:300]}") from None
    return _simulate(args, model, hw, splits, {"model": args.model})


def _run_design(args) -> int:
    from crossnas.data import load_dataset
    from crossnas.design import load_design
    from crossnas.hardware.config import load_hardware, parse_set_args

    d = load_design(args.design, code=[args.model] if args.model else ())
    hw = load_hardware(args.hardware if args.hardware is not None else d.hardware, parse_set_args(args.set))
    splits = load_dataset(args.data, seed=args.seed)
    got = (*splits.input_shape, splits.num_classes)
    want = (*d.input_shape, d.meta["num_classes"])
    if got != want:
        raise CrossnasError(f"--data {args.data!r}: (channels, height, width, classes) {got} do not match "
                            f"the design's {want}")
    return _simulate(args, d.module, hw, splits, {"design": str(args.design), "model": d.name})


def _simulate(args, model, hw, splits, what: dict) -> int:
    import torch
    from torch.utils.data import DataLoader

    from crossnas.analog import evaluate_pim
    from crossnas.search.store import atomic_write
    from crossnas.threads import apply_for_model

    threads = apply_for_model(args.threads or "auto", model, splits.input_shape, args.batch_size)
    g = torch.Generator().manual_seed(args.seed)
    calib = DataLoader(splits.train, batch_size=args.batch_size, shuffle=True, generator=g)
    calib = [b for _, b in zip(range(args.calib_batches), calib)]
    test = DataLoader(splits.test, batch_size=args.batch_size)
    r = evaluate_pim(model, test, hw, calib_loader=calib, chips=args.chips, fidelity=args.fidelity,
                     seed=args.seed, device=args.device, kernel=args.kernel)
    out = {**what, "data": args.data, "hardware": hw.name, "fidelity": args.fidelity,
           "chips": args.chips, "accuracy_pim": r.accuracy_pim, "accuracy_pim_std": r.accuracy_pim_std,
           "accuracy_digital": r.accuracy_digital, "per_chip": r.per_chip, "threads": threads.to_dict()}
    print(f"digital (quantized) accuracy {r.accuracy_digital:.4f}; PIM accuracy {r.accuracy_pim:.4f} "
          f"+- {r.accuracy_pim_std:.4f} over {args.chips} chips ({args.fidelity})")
    if args.json:
        atomic_write(args.json, json.dumps(out, indent=2))
    return 0
