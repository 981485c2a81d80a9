"""Does the supernet rank? Kendall tau between supernet accuracy (as the search scores it) and standalone
accuracy after a fixed short training, over a seeded set of subnets spanning capacity.

    PYTHONPATH=src .venv/bin/python benchmarks/ranking.py --json out.json [--data digits|fashion-mnist]
        [--limit N] [--space small28] [--subnets 20] [--supernet-epochs 30]
        [--sampling uniform sandwich uniform:120] [--epochs 8] [--standalone-limit N]
        [--run-config CONFIG] [--supernet RUN/supernet/checkpoint.pt] [--chip drawn|config]
        [--standalone-from EARLIER.json]

Subnets: 4,000 genomes of the space (`--space`, default small28) drawn with seed 0 (canonical, distinct),
sorted by MACs, and `--subnets` taken at evenly spaced MACs ranks, so the set spans capacity. For each
supernet training (`--sampling`: one supernet per mode, the same seed, epochs and batch size) every subnet
is scored as the search scores it: extracted at its bits, BN recalibrated on `bn_batches` training
batches, PIM accuracy with the fast simulator on the candidate's hardware over the validation subset
(`--val-limit`). `--supernet PATH` scores that one checkpoint (a crossnas supernet's checkpoint.pt, read by
crossnas' safe loader) instead of training any, labelled with its sampling mode and steps.
`--run-config` (a run's config.yaml or a run preset name) takes the data split, the space, the hardware
and the search's scoring settings (fidelity, val_limit, bn_batches, ...) from that run, through the
pipeline's own functions, so a checkpoint of that run is scored on its own validation split as its search
scores it; the flags for those are then ignored. `--chip config` sets every subnet's circuit and ADC genes
to the hardware config's own values, so only the networks differ (the standalone reference knows no chip).
Standalone: the same subnet from fresh weights (two seeds), trained quantization- and noise-aware
(`crossnas.pipeline.retrain.train_qat`, sigma 0.05, lr 0.05, cosine) for `--epochs` epochs at one batch
size on the training split or a fixed seeded subset of it (`--standalone-limit`), so every subnet gets the
same number of forward-backward passes; its digital validation accuracy (whole split), averaged over the
seeds, is the reference. Reported: tau overall and the mean tau within MACs tertiles (capacity alone
cannot carry it there), MACs' own tau beside them, and the noise ceiling (tau between the two standalone
seeds).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from scipy.stats import kendalltau
from torch.utils.data import Subset

from crossnas.data import load_dataset
from crossnas.errors import CrossnasError
from crossnas.hardware import load_hardware
from crossnas.pipeline.retrain import train_qat
from crossnas.search.crosslayer import CrossLayerEvaluator, make_evaluator
from crossnas.space import get_space_preset
from crossnas.supernet import Supernet
from crossnas.supernet.model import build_subnet
from crossnas.supernet.train import SupernetTrainConfig, load_checkpoint, train_supernet
from crossnas.threads import network_macs


def pick_subnets(space, n: int, in_channels: int) -> list[np.ndarray]:
    pool = {space.key(g): g for g in space.sample(np.random.default_rng(0), 4000)}
    genomes = sorted(pool.values(), key=lambda g: (network_macs(space.network_arch(g), in_channels,
                                                                space.input_size), space.key(g)))
    idx = np.unique(np.linspace(0, len(genomes) - 1, n).round().astype(int))
    return [genomes[i] for i in idx]


def tau(a, b) -> float:
    return float(kendalltau(a, b).statistic)


def tertile_tau(macs, a, b) -> float:
    order = np.argsort(macs, kind="stable")
    return float(np.mean([tau(np.asarray(a)[t], np.asarray(b)[t]) for t in np.array_split(order, 3)]))


def scoring_inputs(a):
    """(splits, space, hardware, evaluator(supernet), scoring settings, run config or None): from the run
    config through the pipeline's own functions when one is given, from the flags otherwise."""
    if a.run_config:
        from crossnas.pipeline import load_run_config, resolve_config_path
        from crossnas.pipeline.config import load_splits, resolve_hardware, resolve_space

        cfg = load_run_config(resolve_config_path(a.run_config))
        splits = load_splits(cfg)
        space, hw, s = resolve_space(cfg, splits.input_size), resolve_hardware(cfg), cfg.search
        scoring = {k: getattr(s, k) for k in ("fidelity", "val_limit", "bn_batches", "calib_batches",
                                              "batch_size", "chips", "seed")}
        return splits, space, hw, lambda sn: make_evaluator(space, sn, splits, hw, s), scoring, cfg
    splits = load_dataset(a.data, seed=0, val_fraction=a.val_fraction, limit=a.limit)
    space = get_space_preset(a.space, input_size=splits.input_size)
    hw = load_hardware("mnsim-default", {"device.variation": 0.05})
    shape = (splits.in_channels, splits.input_size, splits.input_size)
    scoring = {"fidelity": "fast", "val_limit": a.val_limit, "bn_batches": a.bn_batches, "batch_size": 128,
               "chips": 1, "seed": 0}

    def evaluator(sn):
        return CrossLayerEvaluator(space, sn, splits.train, splits.val, hw, shape, fidelity="fast",
                                   val_limit=a.val_limit, bn_batches=a.bn_batches, batch_size=128, seed=0)
    return splits, space, hw, evaluator, scoring, None


def on_config_chip(space, genomes: list[np.ndarray], hardware) -> list[np.ndarray]:
    """The genomes with their circuit and ADC genes set to the hardware config's own values (the rule of
    `stage1_genome`), so only the networks and their bits differ: a standalone (digital) reference knows no
    chip, and a drawn chip with a 4-bit ADC takes most networks to chance whatever their weights."""
    from crossnas.search.crosslayer import stage1_genome
    from crossnas.search.subspace import gene_groups

    base, groups = stage1_genome(space, hardware), gene_groups(space)
    chip = groups["circuit"] + [i for i in groups["bits"] if space.labels[i].endswith(".adc_bits")]
    out = []
    for g in genomes:
        g = g.copy()
        g[chip] = base[chip]
        if not space.is_valid(g):
            raise CrossnasError(f"subnet {space.key(g)}: not valid on the config's chip")
        out.append(g)
    return out


def reused_standalone(path: str, splits, macs: list[float]) -> dict:
    """The standalone results of an earlier run of this benchmark, refused unless it trained these subnets
    on this data (training them is what costs: the supernet scores then take minutes)."""
    with open(path) as f:
        prev = json.load(f)
    if (prev.get("data"), prev.get("train_images"), prev.get("val_images"), prev.get("macs")) != (
            splits.name, len(splits.train), len(splits.val), macs):
        raise CrossnasError(f"{path}: its standalone results are of other subnets or data")
    keys = ("standalone", "standalone_epochs", "standalone_train_images", "batch_size", "standalone_steps",
            "standalone_s")
    return {**{k: prev[k] for k in keys}, "standalone_from": str(path)}


def standalone_set(train, limit: int | None):
    """The standalone nets' training images: the whole split, or `limit` of them drawn once with seed 0."""
    if limit is None or limit >= len(train):
        return train
    return Subset(train, np.sort(np.random.default_rng(0).choice(len(train), limit, replace=False)).tolist())


def steps_and_passes(cfg: SupernetTrainConfig, epochs: int, n_train: int) -> tuple[int, int]:
    """Supernet steps over `epochs`, and forward-backward passes (the sandwich runs 2 + random paths)."""
    steps = epochs * math.ceil(n_train / cfg.batch_size)
    return steps, steps * (1 if cfg.sampling == "uniform" else 2 + cfg.sandwich_random)


def checkpoint_supernet(path: str, space, splits, run_cfg) -> tuple[Supernet, dict]:
    """The checkpoint's supernet (crossnas' safe loader) and its row: sampling mode, steps, passes."""
    sn = Supernet.from_space(space, splits.in_channels, splits.num_classes, splits.input_size)
    ck = load_checkpoint(sn, path)
    if not isinstance(ck.get("config"), dict):
        raise CrossnasError(f"{path}: no training config in the checkpoint "
                            "(pass a checkpoint.pt of train-supernet or of a run)")
    cfg = SupernetTrainConfig(**ck["config"])
    if run_cfg is not None:  # a checkpoint of another run would be scored on the wrong split
        from crossnas.pipeline.fingerprint import changed_fields

        want = run_cfg.supernet.model_dump(mode="json")
        diff = [f for f in changed_fields(want, cfg.model_dump(mode="json")) if f != "device"]
        if diff:
            raise CrossnasError(f"{path}: trained with other supernet settings than the run config's "
                                f"({', '.join(diff)})")
    epochs = int(ck.get("epoch", cfg.epochs))
    steps, passes = steps_and_passes(cfg, epochs, len(splits.train))
    from crossnas.usercode import file_sha256

    return sn, {"checkpoint": str(path), "checkpoint_sha256": file_sha256(path), "sampling": cfg.sampling,
                "epochs": epochs, "planned_epochs": cfg.epochs, "batch_size": cfg.batch_size,
                "steps": steps, "forward_backward_passes": passes, "train_s": None}


def trained_supernet(spec: str, a, space, splits) -> tuple[Supernet, dict]:
    """A supernet trained here for `--sampling` entry `MODE[:EPOCHS]`, and its row."""
    mode, _, ep = spec.partition(":")
    epochs = int(ep) if ep else a.supernet_epochs
    torch.manual_seed(0)
    sn = Supernet.from_space(space, splits.in_channels, splits.num_classes, splits.input_size)
    cfg = SupernetTrainConfig(epochs=epochs, batch_size=a.batch_size, lr=0.05, seed=0,
                              sampling=mode, val_subnets=0, device="cpu")
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as d:
        train_supernet(sn, splits, cfg, d, progress=False)
    steps, passes = steps_and_passes(cfg, epochs, len(splits.train))
    return sn, {"sampling": mode, "epochs": epochs, "steps": steps, "forward_backward_passes": passes,
                "train_s": time.perf_counter() - t0}


def train_standalone(a, space, genomes, splits) -> dict:
    """Every subnet from fresh weights, two seeds, the same steps each; digital accuracy on the whole val."""
    train_set = standalone_set(splits.train, a.standalone_limit)
    t0 = time.perf_counter()
    standalone = []  # [seed][subnet]
    for seed in (0, 1):
        accs = []
        for g in genomes:
            arch = space.network_arch(g)
            torch.manual_seed(seed)
            net = build_subnet(arch, splits.in_channels, splits.num_classes, splits.input_size,
                               head_hidden=space.head_hidden)
            info = train_qat(net, train_set, splits.val, epochs=a.epochs, lr=0.05, batch_size=a.batch_size,
                             noise_sigma=0.05, seed=seed)
            accs.append(info["val_acc_after"])
        standalone.append(accs)
    steps = a.epochs * math.ceil(len(train_set) / a.batch_size)
    return {"standalone": standalone, "standalone_epochs": a.epochs,
            "standalone_train_images": len(train_set), "batch_size": a.batch_size, "standalone_steps": steps,
            "standalone_s": time.perf_counter() - t0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default="digits")
    ap.add_argument("--limit", type=int, default=None, help="training images (fashion-mnist subsets)")
    ap.add_argument("--val-fraction", type=float, default=0.3)
    ap.add_argument("--space", default="small28", help="space preset (crossnas space list)")
    ap.add_argument("--run-config", default=None,
                    help="a run's config.yaml or preset: data, space, hardware and scoring from it")
    ap.add_argument("--supernet", default=None, help="score this supernet checkpoint.pt instead of training")
    ap.add_argument("--subnets", type=int, default=20)
    ap.add_argument("--supernet-epochs", type=int, default=30)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--sampling", nargs="+", default=["uniform", "sandwich"],
                    help="MODE or MODE:EPOCHS per supernet (e.g. uniform:120 for as many passes as sandwich)")
    ap.add_argument("--epochs", type=int, default=8, help="standalone training epochs")
    ap.add_argument("--standalone-limit", type=int, default=None,
                    help="standalone training images: a fixed seeded subset of the training split")
    ap.add_argument("--chip", choices=["drawn", "config"], default="drawn",
                    help="subnets' circuit and ADC genes: as drawn, or the hardware config's own")
    ap.add_argument("--standalone-from", default=None,
                    help="reuse the standalone results of an earlier --json of the same subnets and data")
    ap.add_argument("--val-limit", type=int, default=1000)
    ap.add_argument("--bn-batches", type=int, default=10)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    wall0, load0 = time.perf_counter(), os.getloadavg()
    splits, space, hw, evaluator, scoring, run_cfg = scoring_inputs(a)
    genomes = pick_subnets(space, a.subnets, splits.in_channels)
    if a.chip == "config":
        genomes = on_config_chip(space, genomes, hw)
    macs = [network_macs(space.network_arch(g), splits.in_channels, splits.input_size) for g in genomes]
    supernets = ([checkpoint_supernet(a.supernet, space, splits, run_cfg)] if a.supernet
                 else [trained_supernet(spec, a, space, splits) for spec in a.sampling])
    rows = []
    for sn, row in supernets:
        t0 = time.perf_counter()
        scores = evaluator(sn)([space.decode(g) for g in genomes])
        rows.append({**row, "score_s": time.perf_counter() - t0,
                     "accuracy_pim": [s["accuracy_pim"] for s in scores],
                     "accuracy_digital": [s["accuracy_digital"] for s in scores]})
    sa = (reused_standalone(a.standalone_from, splits, macs) if a.standalone_from
          else train_standalone(a, space, genomes, splits))
    standalone = sa["standalone"]
    ref = np.mean(standalone, axis=0)
    out = {"data": splits.name, "space": a.space if run_cfg is None else run_cfg.space.model_dump(),
           "run_config": a.run_config, "scoring": scoring, "train_images": len(splits.train),
           "val_images": len(splits.val), "subnets": len(genomes), "macs": macs, "chip": a.chip,
           "hardware": [space.to_arch(g).hardware for g in genomes], **sa,
           # the reference discriminates only where its spread is well above the seeds' disagreement
           "standalone_range": float(ref.max() - ref.min()),
           "standalone_seed_diff_mean": float(np.mean(np.abs(np.subtract(*standalone)))),
           "noise_ceiling_tau": tau(standalone[0], standalone[1]),
           "noise_ceiling_tertile_tau": tertile_tau(macs, standalone[0], standalone[1]),
           "macs_tau": tau(macs, ref), "macs_tertile_tau": tertile_tau(macs, macs, ref),
           "supernets": [{**r, "tau": tau(r["accuracy_pim"], ref),
                          "tertile_tau": tertile_tau(macs, r["accuracy_pim"], ref),
                          "tau_digital": tau(r["accuracy_digital"], ref)} for r in rows]}
    out.update({"wall_s": time.perf_counter() - wall0, "threads": a.threads,
                "load_avg_start": list(load0), "load_avg_end": list(os.getloadavg())})
    print(f"{splits.name}: {len(splits.train)} train / {len(splits.val)} val images, {len(genomes)} subnets "
          f"({min(macs) / 1e6:.2f}-{max(macs) / 1e6:.2f} MMAC, {a.chip} chips), standalone "
          f"{sa['standalone_epochs']} epochs x 2 seeds on {sa['standalone_train_images']} images "
          f"(acc {min(ref):.3f}-{max(ref):.3f}, seeds differ by "
          f"{out['standalone_seed_diff_mean']:.3f} on average)")
    labels = []
    for s in out["supernets"]:
        ck = Path(s["checkpoint"]) if "checkpoint" in s else None
        labels.append(f"supernet {f'{ck.parent.name}/{ck.name} ' if ck else ''}{s['sampling']} "
                      f"({s['steps']} steps)")
    w = max(34, *map(len, labels))
    print(f"{'scores':<{w}}{'tau':>8}{'tertile tau':>13}")
    print(f"{'noise ceiling (seed 0 vs seed 1)':<{w}}{out['noise_ceiling_tau']:>8.2f}"
          f"{out['noise_ceiling_tertile_tau']:>13.2f}")
    print(f"{'MACs':<{w}}{out['macs_tau']:>8.2f}{out['macs_tertile_tau']:>13.2f}")
    for label, s in zip(labels, out["supernets"]):
        trained = "trained by its run" if s["train_s"] is None else f"train {s['train_s']:.0f} s"
        print(f"{label:<{w}}{s['tau']:>8.2f}{s['tertile_tau']:>13.2f}   (digital {s['tau_digital']:.2f}, "
              f"{trained}, {s['forward_backward_passes']} passes)")
    print(f"wall {out['wall_s']:.0f} s, load average {load0[0]:.1f} at start, "
          f"{out['load_avg_end'][0]:.1f} at end")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    try:
        main()
    except CrossnasError as e:  # a wrong checkpoint or config: one line, exit 2 (as the CLI does)
        print(f"ranking: {e}", file=sys.stderr)
        raise SystemExit(2) from None
