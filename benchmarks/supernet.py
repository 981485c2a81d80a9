"""Supernet benchmark: path-training overhead vs the extracted subnet, and a short digits demo.

    .venv/bin/python benchmarks/supernet.py --json out.json [--train-seconds 120] [--device auto]

`overhead` = time per training step of the supernet on a sampled path / time per step of the same
path extracted standalone (quantizers on in both), averaged over 10 sampled paths of a demo space
(8x8 input, 3 slots, widths 8/16). Then a demo supernet is trained on sklearn digits for about
--train-seconds, 10 random subnets are extracted, BN-recalibrated and evaluated on the validation split.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from crossnas.device import resolve_device
from crossnas.supernet import Supernet, SupernetSpec, recalibrate_bn
from crossnas.supernet.train import SupernetTrainConfig, train_supernet

SPEC = SupernetSpec(n_slots=3, widths=(8, 16), head_hidden=(64, 32), wbits=(4, 8), abits=(4, 8),
                    head_bits=8)


def _sync(dev):
    if dev.type == "cuda":
        torch.cuda.synchronize()


def _time_steps(step, n, dev) -> float:
    for _ in range(3):
        step()
    _sync(dev)
    t = time.perf_counter()
    for _ in range(n):
        step()
    _sync(dev)
    return (time.perf_counter() - t) / n


def overhead(dev, n_paths=10, steps=30, batch=64) -> dict:
    torch.manual_seed(0)
    net = Supernet(SPEC, 1, 10, 8).to(dev).train()
    rng = np.random.default_rng(0)
    x = torch.randn(batch, 1, 8, 8, device=dev)
    y = torch.randint(0, 10, (batch,), device=dev)
    ratios, rows = [], []
    for _ in range(n_paths):
        arch = net.sample_arch(rng)
        sub = net.extract(arch).train()
        o1 = torch.optim.SGD(net.parameters(), lr=1e-3, momentum=0.9)
        o2 = torch.optim.SGD(sub.parameters(), lr=1e-3, momentum=0.9)

        def s_super(o1=o1, arch=arch):
            o1.zero_grad(set_to_none=True)
            F.cross_entropy(net(x, arch), y).backward()
            o1.step()

        def s_sub(o2=o2, sub=sub):
            o2.zero_grad(set_to_none=True)
            F.cross_entropy(sub(x), y).backward()
            o2.step()

        # interleave to share machine noise; take the best of 3 rounds each
        ts = min(_time_steps(s_super, steps, dev) for _ in range(3))
        tx = min(_time_steps(s_sub, steps, dev) for _ in range(3))
        ratios.append(ts / tx)
        rows.append({"arch": [f"{b.kind}:{b.width}:w{b.wbits}a{b.abits}" for b in arch.blocks],
                     "supernet_ms": ts * 1e3, "extracted_ms": tx * 1e3, "ratio": ts / tx})
    return {"overhead": float(np.mean(ratios)), "paths": rows}


def digits_splits(seed=0):
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.tensor(d.images, dtype=torch.float32).unsqueeze(1) / 16.0
    x = (x - x.mean()) / x.std()
    y = torch.tensor(d.target, dtype=torch.long)
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    n_val = len(y) // 5
    va, tr = perm[:n_val], perm[n_val:]
    return TensorDataset(x[tr], y[tr]), TensorDataset(x[va], y[va])


def demo(dev, seconds: float) -> dict:
    train, val = digits_splits()
    base = dict(batch_size=64, lr=0.05, weight_decay=5e-4, seed=0, device=dev.type, val_subnets=2)
    with tempfile.TemporaryDirectory() as tmp:
        torch.manual_seed(0)
        probe = Supernet(SPEC, 1, 10, 8)
        t = time.perf_counter()
        train_supernet(probe, (train, val), SupernetTrainConfig(epochs=2, **base), tmp, progress=False)
        per_epoch = (time.perf_counter() - t) / 2
    epochs = max(2, int(seconds / per_epoch))
    torch.manual_seed(0)
    net = Supernet(SPEC, 1, 10, 8)
    t = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        hist = train_supernet(net, (train, val), SupernetTrainConfig(epochs=epochs, **base), tmp,
                              progress=False)
    train_s = time.perf_counter() - t
    rng = np.random.default_rng(123)
    val_loader = DataLoader(val, batch_size=256)
    rec_loader = DataLoader(train, batch_size=64, shuffle=True, generator=torch.Generator().manual_seed(1))
    subnets = []
    for _ in range(10):
        arch = net.sample_arch(rng)
        sub = net.extract(arch)
        recalibrate_bn(sub, rec_loader, n_batches=10, seed=0)
        sub.eval()
        correct = 0
        with torch.no_grad():
            for xb, yb in val_loader:
                correct += int((sub(xb.to(dev)).argmax(1) == yb.to(dev)).sum())
        acc = correct / len(val)
        desc = [f"{b.kind}:{b.width}:w{b.wbits}a{b.abits}" if b.kind != "skip" else "skip"
                for b in arch.blocks]
        subnets.append({"arch": desc, "val_acc": acc})
        print(f"  val_acc {acc:.3f}  {' | '.join(desc)}")
    accs = [s["val_acc"] for s in subnets]
    return {"epochs": epochs, "train_seconds": train_s, "final_train_loss": hist[-1]["train_loss"],
            "final_train_acc": hist[-1]["train_acc"], "subnets": subnets,
            "val_acc_min": min(accs), "val_acc_max": max(accs), "val_acc_mean": float(np.mean(accs))}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", default=None)
    ap.add_argument("--train-seconds", type=float, default=120.0)
    ap.add_argument("--device", default="cpu", choices=("auto", "cpu", "cuda"))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--skip-demo", action="store_true")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    dev = resolve_device(args.device)
    res = {"device": str(dev), "threads": args.threads}
    res.update(overhead(dev))
    print(f"overhead (supernet step / extracted step, mean of 10 paths): {res['overhead']:.3f}")
    if not args.skip_demo:
        res["demo"] = demo(dev, args.train_seconds)
        d = res["demo"]
        print(f"demo: {d['epochs']} epochs in {d['train_seconds']:.0f}s; subnet val acc "
              f"min {d['val_acc_min']:.3f} mean {d['val_acc_mean']:.3f} max {d['val_acc_max']:.3f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=2)
    return res


if __name__ == "__main__":
    main()
