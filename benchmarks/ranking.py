"""Does the supernet rank? Kendall tau between supernet accuracy (as the search scores it) and standalone
accuracy after a fixed short training, over a seeded set of small28 subnets spanning capacity.

    PYTHONPATH=src .venv/bin/python benchmarks/ranking.py --json out.json [--data digits|fashion-mnist]
        [--limit N] [--subnets 20] [--supernet-epochs 30] [--sampling uniform sandwich uniform:120]
        [--epochs 8]

Subnets: 4,000 genomes of the small28 space drawn with seed 0 (canonical, distinct), sorted by MACs, and
`--subnets` taken at evenly spaced MACs ranks, so the set spans capacity. For each supernet training
(`--sampling`: one supernet per mode, the same seed, epochs and batch size) every subnet is scored as the
search scores it: extracted at its bits, BN recalibrated on `bn_batches` training batches, PIM accuracy
with the fast simulator on the candidate's hardware over the validation subset (`--val-limit`).
Standalone: the same subnet from fresh weights (two seeds), trained quantization- and noise-aware
(`crossnas.pipeline.retrain.train_qat`, sigma 0.05, lr 0.05, cosine) for `--epochs` epochs at one batch
size, so every subnet gets the same number of forward-backward passes; its digital validation accuracy
(whole split), averaged over the seeds, is the reference. Reported: tau overall and the mean tau within
MACs tertiles (capacity alone cannot carry it there), MACs' own tau beside them, and the noise ceiling
(tau between the two standalone seeds).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

import numpy as np
import torch
from scipy.stats import kendalltau

from crossnas.data import load_dataset
from crossnas.hardware import load_hardware
from crossnas.pipeline.retrain import train_qat
from crossnas.search.crosslayer import CrossLayerEvaluator
from crossnas.space import get_space_preset
from crossnas.supernet import Supernet
from crossnas.supernet.model import build_subnet
from crossnas.supernet.train import SupernetTrainConfig, train_supernet
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default="digits")
    ap.add_argument("--limit", type=int, default=None, help="training images (fashion-mnist subsets)")
    ap.add_argument("--val-fraction", type=float, default=0.3)
    ap.add_argument("--subnets", type=int, default=20)
    ap.add_argument("--supernet-epochs", type=int, default=30)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--sampling", nargs="+", default=["uniform", "sandwich"],
                    help="MODE or MODE:EPOCHS per supernet (e.g. uniform:120 for as many passes as sandwich)")
    ap.add_argument("--epochs", type=int, default=8, help="standalone training epochs")
    ap.add_argument("--val-limit", type=int, default=1000)
    ap.add_argument("--bn-batches", type=int, default=10)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    splits = load_dataset(a.data, seed=0, val_fraction=a.val_fraction, limit=a.limit)
    space = get_space_preset("small28", input_size=splits.input_size)
    hw = load_hardware("mnsim-default", {"device.variation": 0.05})
    shape = (splits.in_channels, splits.input_size, splits.input_size)
    genomes = pick_subnets(space, a.subnets, splits.in_channels)
    macs = [network_macs(space.network_arch(g), splits.in_channels, splits.input_size) for g in genomes]
    t0 = time.perf_counter()
    standalone = []  # [seed][subnet]
    for seed in (0, 1):
        accs = []
        for g in genomes:
            arch = space.network_arch(g)
            torch.manual_seed(seed)
            net = build_subnet(arch, splits.in_channels, splits.num_classes, splits.input_size,
                               head_hidden=space.head_hidden)
            info = train_qat(net, splits.train, splits.val, epochs=a.epochs, lr=0.05, batch_size=a.batch_size,
                             noise_sigma=0.05, seed=seed)
            accs.append(info["val_acc_after"])
        standalone.append(accs)
    standalone_s = time.perf_counter() - t0
    ref = np.mean(standalone, axis=0)
    out = {"data": a.data, "train_images": len(splits.train), "val_images": len(splits.val),
           "subnets": len(genomes), "macs": macs, "standalone_epochs": a.epochs, "batch_size": a.batch_size,
           "standalone": standalone, "standalone_s": standalone_s,
           "noise_ceiling_tau": tau(standalone[0], standalone[1]),
           "noise_ceiling_tertile_tau": tertile_tau(macs, standalone[0], standalone[1]),
           "macs_tau": tau(macs, ref), "macs_tertile_tau": tertile_tau(macs, macs, ref), "supernets": []}
    for spec in a.sampling:
        mode, _, ep = spec.partition(":")
        epochs = int(ep) if ep else a.supernet_epochs
        torch.manual_seed(0)
        sn = Supernet.from_space(space, splits.in_channels, splits.num_classes, splits.input_size)
        cfg = SupernetTrainConfig(epochs=epochs, batch_size=a.batch_size, lr=0.05, seed=0,
                                  sampling=mode, val_subnets=0, device="cpu")
        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory() as d:
            train_supernet(sn, splits, cfg, d, progress=False)
        train_s = time.perf_counter() - t0
        ev = CrossLayerEvaluator(space, sn, splits.train, splits.val, hw, shape, fidelity="fast",
                                 val_limit=a.val_limit, bn_batches=a.bn_batches, batch_size=128, seed=0)
        scores = ev([space.decode(g) for g in genomes])
        pim = [s["accuracy_pim"] for s in scores]
        dig = [s["accuracy_digital"] for s in scores]
        steps = epochs * -(-len(splits.train) // a.batch_size)
        passes = steps * (1 if mode == "uniform" else 2 + cfg.sandwich_random)
        out["supernets"].append({"sampling": mode, "epochs": epochs, "steps": steps,
                                 "forward_backward_passes": passes, "train_s": train_s, "accuracy_pim": pim,
                                 "accuracy_digital": dig, "tau": tau(pim, ref),
                                 "tertile_tau": tertile_tau(macs, pim, ref), "tau_digital": tau(dig, ref)})
    print(f"{a.data}: {len(splits.train)} train / {len(splits.val)} val images, {len(genomes)} subnets "
          f"({min(macs) / 1e6:.2f}-{max(macs) / 1e6:.2f} MMAC), standalone {a.epochs} epochs x 2 seeds "
          f"(acc {min(ref):.3f}-{max(ref):.3f})")
    print(f"{'scores':<34}{'tau':>8}{'tertile tau':>13}")
    print(f"{'noise ceiling (seed 0 vs seed 1)':<34}{out['noise_ceiling_tau']:>8.2f}"
          f"{out['noise_ceiling_tertile_tau']:>13.2f}")
    print(f"{'MACs':<34}{out['macs_tau']:>8.2f}{out['macs_tertile_tau']:>13.2f}")
    for s in out["supernets"]:
        label = f"supernet {s['sampling']} ({s['steps']} steps)"
        print(f"{label:<34}{s['tau']:>8.2f}{s['tertile_tau']:>13.2f}   (digital {s['tau_digital']:.2f}, "
              f"train {s['train_s']:.0f} s, {s['forward_backward_passes']} passes)")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
