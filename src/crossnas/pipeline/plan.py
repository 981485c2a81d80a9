"""What a run will do, before it does it: one plan line per stage (the run's stage headers and
`crossnas run CONFIG --dry-run`), the hardware fields that space genes take over, and a time estimate
from a short timed probe (a few supernet steps and one candidate evaluation). Nothing here writes a file.
"""

from __future__ import annotations

import math
import os
import time
from typing import Any

from crossnas.pipeline.state import STAGES
from crossnas.progress import fmt_duration
from crossnas.search import defaults


def user_hardware_keys(cfg) -> dict[str, Any]:
    """{dotted key: value} the user set on the hardware: an overlay file's keys and `hardware.set`."""
    from pathlib import Path

    from crossnas.hardware.config import list_presets
    from crossnas.hardware.naming import _flat
    from crossnas.yamlio import read_yaml_mapping

    keys: dict[str, Any] = {}
    preset = cfg.hardware.preset
    if preset not in list_presets() and Path(preset).is_file():
        over = read_yaml_mapping(Path(preset), "a hardware YAML file")
        keys.update({k: v for k, v in _flat(over).items() if k not in ("base", "name")})
    keys.update(cfg.hardware.set)
    return keys


def space_spec(cfg):
    from crossnas.space.crosslayer import load_spec
    from crossnas.space.presets import get_space_spec

    return get_space_spec(cfg.space.preset) if cfg.space.preset else load_spec(cfg.space.file)


def gene_overrides(cfg, spec=None) -> list[str]:
    """One line per hardware field that both the user's hardware settings and a space gene set: the
    genes win (each candidate's chip takes its gene's value)."""
    from crossnas.space.crosslayer import HW_GENES

    user = user_hardware_keys(cfg)
    spec = spec if spec is not None else space_spec(cfg)
    lines = []
    for fld, (label, keys) in HW_GENES.items():
        choices = getattr(spec, fld, None)
        if choices is None:
            continue
        if fld == "adc_bits" and spec.adc_per_layer:
            label, keys = "slot*.adc_bits", ("adc.bits", "adc.per_layer")
        both = [f"{key}={user[key]}" for key in keys if key in user]
        if both:
            lines.append(f"hardware: {', '.join(both)} also set by the space gene {label} (choices "
                         f"{list(choices)}): the genes win, each candidate takes its own value")
    return lines


def stage_plans(cfg, splits=None, space=None) -> dict[str, str]:
    """{stage: one line saying what it will do, with its sizes}."""
    s, se, sel, rc, bc, fc = cfg.supernet, cfg.search, cfg.select, cfg.retrain, cfg.baselines, cfg.final
    n_train = len(splits.train) if splits is not None else None
    steps = math.ceil(n_train / s.batch_size) if n_train else None
    sup = f"{s.epochs} epochs" + (f" x {steps} steps of {s.batch_size} images ({n_train} training images)"
                                  if steps else f" in batches of {s.batch_size}")
    cands = ""
    if space is not None and hasattr(space, "count_configs"):
        cands = f" of {space.count_configs():,} candidates"
    pop = se.pop_size if se.pop_size is not None else (
        defaults.plan(se.budget, space, None)["pop_size"] if space is not None else "auto")
    search = (f"{se.strategy} ({se.mode}), {se.budget} evaluations{cands}, population {pop}, "
              f"{se.fidelity} fidelity on {se.val_limit or 'all'} validation images x {se.chips} chip(s); "
              f"then the front re-scored ({se.final_fidelity}, {se.final_chips} chips)")
    n_entries = sel.k + len(bc.models)
    test_images: Any = fc.test_limit or "all"
    if splits is not None:
        test_images = min(fc.test_limit or len(splits.test), len(splits.test))
    return {
        "supernet": f"{sup}, one random path per step, {s.schedule} lr {s.lr:g}",
        "search": search,
        "retrain": f"{sel.k} design(s) chosen by {sel.rule}, {rc.epochs} epochs each (quantization- and "
                   "noise-aware)",
        "baselines": (f"{', '.join(bc.models)}: {bc.epochs} epochs each from scratch" if bc.models
                      else "none"),
        "final": f"up to {n_entries} entries x {test_images} test images x {fc.chips} chips "
                 f"({fc.fidelity})",
        "report": "report.html and its plots from the run folder",
    }


def probe(cfg, splits, space, device, steps: int = 5) -> dict[str, float]:
    """Seconds per supernet training step, per candidate evaluation in the loop and per candidate-chip at
    final fidelity, timed now on this machine after one untimed warm-up of each (a fresh supernet;
    nothing is written)."""
    import numpy as np
    import torch
    import torch.nn.functional as F
    from torch.utils.data import DataLoader

    from crossnas.pipeline.config import build_supernet, resolve_hardware
    from crossnas.search.crosslayer import make_evaluator

    net = build_supernet(cfg, splits, space).to(device)
    opt = torch.optim.SGD(net.parameters(), lr=cfg.supernet.lr)
    loader = DataLoader(splits.train, batch_size=cfg.supernet.batch_size, shuffle=True,
                        generator=torch.Generator().manual_seed(0))
    rng = np.random.default_rng(0)
    t = []
    for _, (x, y) in zip(range(steps + 1), loader):
        t0 = time.perf_counter()
        loss = F.cross_entropy(net(x.to(device), net.sample_arch(rng)), y.to(device))
        opt.zero_grad()
        loss.backward()
        opt.step()
        t.append(time.perf_counter() - t0)
    net.to("cpu").eval()
    hw = resolve_hardware(cfg)
    archs = [space.decode(g) for g in space.sample(np.random.default_rng(0), 3)]  # warm-up, loop, final

    warmed = set()

    def timed(ev, todo):
        if ev.fidelity not in warmed:  # warm-up: the first call at a fidelity pays one-off costs
            ev(archs[:1])
            warmed.add(ev.fidelity)
        t0 = time.perf_counter()
        ev(todo)
        return (time.perf_counter() - t0) / len(todo)

    loop = make_evaluator(space, net, splits, hw, cfg.search, device=str(device))
    # final fidelity (exact: slow) on one batch of images, scaled per image
    images = min(cfg.search.batch_size, cfg.search.val_limit or len(splits.val), len(splits.val))
    small = cfg.search.model_copy(update={"val_limit": images})
    final = make_evaluator(space, net, splits, hw, small, fidelity=cfg.search.final_fidelity, chips=1,
                           device=str(device))
    return {"step_s": float(np.median(t[1:] or t)), "eval_s": timed(loop, archs[1:2]),
            "final_image_s": timed(final, archs[2:3]) / images}


def estimate(cfg, splits, probe_s: dict[str, float]) -> dict[str, float]:
    """Seconds per stage from the probe (rough: retraining and baselines are costed as supernet steps,
    the front is assumed one population large, a final-stage chip as a front re-scoring chip)."""
    s, se, rc, bc, fc, sel = cfg.supernet, cfg.search, cfg.retrain, cfg.baselines, cfg.final, cfg.select
    n_train, n_test = len(splits.train), len(splits.test)
    per_image = probe_s["step_s"] / s.batch_size
    front = min(se.budget, se.pop_size or defaults.auto_pop_size(se.budget))
    test = min(fc.test_limit or n_test, n_test)
    val = min(se.val_limit or len(splits.val), len(splits.val))
    final_image = probe_s["final_image_s"]
    return {
        # per epoch: the training steps, then val_subnets forward passes over the validation split
        # (a forward pass costs about a third of a training step)
        "supernet": s.epochs * (math.ceil(n_train / s.batch_size) * probe_s["step_s"]
                                + s.val_subnets * len(splits.val) * per_image / 3),
        "search": se.budget * probe_s["eval_s"] + front * se.final_chips * val * final_image,
        "retrain": sel.k * rc.epochs * n_train * per_image,
        "baselines": len(bc.models) * bc.epochs * n_train * per_image,
        "final": (sel.k + len(bc.models)) * fc.chips * test * final_image,
        "report": 2.0,
    }


def dry_run(cfg, out, *, device: str | None = None, probe_steps: int = 5) -> str:
    """The text of `crossnas run CONFIG --dry-run`: resolved config, overrides, plan, candidates, estimate."""
    import yaml

    from crossnas.device import resolve_device
    from crossnas.pipeline.config import load_splits, resolve_hardware, resolve_space

    dev = resolve_device(device or cfg.device)
    splits = load_splits(cfg)
    space = resolve_space(cfg, splits.input_size)
    hw = resolve_hardware(cfg)
    lines = ["# resolved config", yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False).rstrip(), "",
             f"run folder: {out}" + (" (exists: pass --resume to continue it)" if (out / "run.json").exists()
                                     else ""),
             f"data: {splits.name}, {len(splits.train)} train / {len(splits.val)} val / "
             f"{len(splits.test)} test, "
             f"{splits.in_channels}x{splits.input_size}x{splits.input_size}, {splits.num_classes} classes",
             f"hardware: {hw.name}", f"device: {dev}",
             f"candidates: {space.count_configs():,} in space {space.spec.name} "
             f"({space.count_networks():,} networks); the search evaluates {cfg.search.budget}"]
    lines += gene_overrides(cfg, space.spec)
    t0 = time.perf_counter()
    pr = probe(cfg, splits, space, dev, steps=probe_steps)
    est = estimate(cfg, splits, pr)
    lines += ["", f"# plan (estimate from a {time.perf_counter() - t0:.1f} s probe: "
                  f"{pr['step_s'] * 1e3:.0f} ms per supernet step, {pr['eval_s']:.2f} s per candidate in "
                  f"the loop, {pr['final_image_s'] * 1e3:.1f} ms per image and chip at final fidelity; "
                  f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)"]
    plans = stage_plans(cfg, splits, space)
    for name in STAGES:
        lines.append(f"{name:<10} ~{fmt_duration(est[name]):>7}  {plans[name]}")
    lines.append(f"{'total':<10} ~{fmt_duration(sum(est.values())):>7}  (rough; nothing was written)")
    return "\n".join(lines)
