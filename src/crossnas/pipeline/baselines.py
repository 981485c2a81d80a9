"""Hand-made baselines, trained like the designs: each model at the hardware's default bits and, with
`baselines.best_bits`, at the uniform weight/activation bits (among the space's bit choices) that reach
the best validation accuracy after `baselines.bits_epochs` epochs; the latter is also scored on every
design's chip in the final stage, so each design meets the baselines on its own hardware.

Folders: `baselines/NAME` (default bits) and `baselines/NAME-wBaB` (best uniform bits); the short
trainings that choose the bits are cached in `baselines/bits.json`.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from crossnas.errors import CrossnasError
from crossnas.search.store import atomic_write

BITS = "bits.json"


def uniform_bits(space) -> list[int]:
    """Bit widths the space offers for weights and activations alike."""
    return sorted(set(space.wbits) & set(space.abits))


def _train(p, name: str, j: int, wb: int, ab: int, *, epochs: int | None, label: str, progress=None):
    from crossnas.models import get_model
    from crossnas.pipeline.designs import recipe
    from crossnas.pipeline.retrain import train_qat
    from crossnas.quant import quantize_model
    from crossnas.usercode import is_code_spec

    s, bc, seed = p.splits, p.cfg.baselines, p.cfg.retrain.seed + 1000 + j
    kwargs = {"width_mult": bc.width_mult.get(name, 1.0)}
    if is_code_spec(name) and name not in bc.width_mult:
        kwargs = {}  # a user's model gets width_mult only when the config gives it one
    torch.manual_seed(seed)
    model = quantize_model(get_model(name, s.in_channels, s.num_classes, s.input_size, **kwargs), wb, ab)
    progress = p.progress if progress is None else progress
    info = train_qat(model, s.train, s.val, seed=seed, device=p.device, progress=progress, label=label,
                     augment=p.cfg.augment, **recipe(p, p.hardware, baseline=True, epochs=epochs))
    return model, kwargs, info


def baseline_epochs(p) -> int:
    """Most epochs the baselines stage can train (patience usually stops earlier): a stage task's total."""
    bc = p.cfg.baselines
    full = bc.epochs if bc.epochs is not None else p.cfg.retrain.epochs
    extra = (full + bc.bits_epochs * len(uniform_bits(p.space))) if bc.best_bits else 0
    return max(1, len(bc.models) * (full + extra))


def best_bits(p, name: str, j: int, progress=None) -> int:
    """The uniform bits with the best validation accuracy after the short training (ties: fewer bits)."""
    path = p.run_dir / "baselines" / BITS
    saved = json.loads(path.read_text()) if path.exists() else {}
    epochs = p.cfg.baselines.bits_epochs
    runs = saved.setdefault(name, {})
    for b in uniform_bits(p.space):
        key = f"w{b}a{b}@{epochs}"
        if key not in runs:
            _, _, info = _train(p, name, j, b, b, epochs=epochs, label=f"baseline {name} w{b}a{b} (bits)",
                                progress=progress)
            runs[key] = info["val_acc_after"]
            atomic_write(path, json.dumps(saved, indent=1))
    scores = {b: runs[f"w{b}a{b}@{epochs}"] for b in uniform_bits(p.space)}
    return max(scores, key=lambda b: (scores[b], -b))


def train_baselines(p, progress=None) -> None:
    from crossnas.design import save_design
    from crossnas.models import model_label

    s, bc, hw = p.splits, p.cfg.baselines, p.hardware
    for j, name in enumerate(bc.models):
        label = model_label(name)
        plans = [(label, hw.quant.weight_bits, hw.quant.act_bits, "baseline")]
        if bc.best_bits and uniform_bits(p.space):
            b = best_bits(p, name, j, progress)
            plans.append((f"{label}-w{b}a{b}", b, b, "baseline, best uniform bits on validation"))
        for folder, wb, ab, why in plans:
            bdir = p.run_dir / "baselines" / folder
            if (bdir / "design.json").exists():
                continue
            model, kwargs, info = _train(p, name, j, wb, ab, epochs=None, label=folder, progress=progress)
            desc = f"{label} (width x{kwargs.get('width_mult', 1.0):g}) w{wb}a{ab}"
            save_design(bdir, model.cpu(), hardware=hw, in_channels=s.in_channels, num_classes=s.num_classes,
                        input_size=s.input_size, name=folder,
                        model={"name": name, "kwargs": kwargs, "weight_bits": wb, "act_bits": ab},
                        metrics={"retrain": info, "description": desc, "selected_by": why})


def baseline_dirs(run_dir: Path, models: list[str]) -> list[Path]:
    """Every trained baseline folder, by model: the default-bits one first."""
    from crossnas.models import model_label

    out = []
    for label in map(model_label, models):
        out += [d for d in [run_dir / "baselines" / label] if (d / "design.json").exists()]
        out += sorted(d for d in (run_dir / "baselines").glob(f"{label}-w*a*")
                      if (d / "design.json").exists())
    return out


def baseline_val_accuracy(run_dir: Path, name: str) -> float | None:
    """The best validation accuracy among `name`'s trained baselines (any bits), None when none."""
    accs = []
    for d in baseline_dirs(run_dir, [name]):
        meta = json.loads((d / "design.json").read_text())
        acc = ((meta.get("metrics") or {}).get("retrain") or {}).get("val_acc_after")
        if acc is not None:
            accs.append(float(acc))
    return max(accs) if accs else None


def baseline_layers(p, name: str) -> list[tuple[str, list, object]]:
    """(folder name, cost-model layers, hardware it was trained for) of each of `name`'s trained variants."""
    from crossnas.design import load_design
    from crossnas.network import extract_layers

    out = []
    for d in baseline_dirs(p.run_dir, [name]):
        design = load_design(d, code=p.cfg.baselines.models)
        out.append((d.name, extract_layers(design.module.cpu(), p.input_shape), design.hardware))
    return out


def lowest_cost(variants: list[tuple[str, list, object]], metric: str, hardware=None
                ) -> tuple[float, str] | None:
    """(value, folder name) of the lowest `metric` among `variants` (baseline_layers), each on its own
    hardware (the default chip: a budget taken from it holds against every variant) or, given, on
    `hardware` (a design's chip); None when there are none; a CrossnasError when `metric` is not a cost."""
    from crossnas.cost import evaluate_cost

    found = []
    for folder, layers, hw in variants:
        totals = evaluate_cost(layers, hw if hardware is None else hardware).totals
        if metric not in totals:
            raise CrossnasError(f"select.budget.{metric}: a budget relative to a baseline takes a cost "
                                f"metric (have {', '.join(sorted(totals))})")
        found.append((float(totals[metric]), folder))
    return min(found) if found else None


def final_plan(run_dir: Path, models: list[str], on: str = "all") -> list[tuple[str, Path, Path | None]]:
    """(entry name, design folder, chip folder or None for its own hardware) for the final stage: the
    designs, every baseline on the default chip, and each best-bits baseline on each design's chip (`on:
    all`) or on the picked design's only (`on: picked`, the one the paired comparison reads)."""
    from crossnas.pipeline.designs import picked_design

    designs = sorted((run_dir / "designs").glob("design-*"), key=lambda d: int(d.name.split("-")[1]))
    bases = baseline_dirs(run_dir, models)
    plan = [(d.name, d, None) for d in designs + bases]
    from crossnas.models import model_label

    if on == "picked":
        metas = [{"name": d.name, "kind": "design",
                  "retrain": json.loads((d / "design.json").read_text())["metrics"].get("retrain")}
                 for d in designs]
        designs = [d for d in designs if d.name == picked_design(metas)]
    labels = {model_label(m) for m in models}
    plan += [(f"{b.name}@{d.name}", b, d) for d in designs for b in bases if b.name not in labels]
    return plan
