"""Analog PIM simulator benchmark: cost of the exact simulation vs the float model, and fast-vs-exact ranking.

Run: .venv/bin/python benchmarks/analog_sim.py --json out.json
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
from scipy.stats import kendalltau
from torch import nn

from crossnas.analog import set_chip, set_mode, to_pim
from crossnas.hardware.config import HardwareConfig


def vgg(c=1, n=10):
    def blk(i, o):
        return [nn.Conv2d(i, o, 3, padding=1), nn.BatchNorm2d(o), nn.ReLU()]
    return nn.Sequential(*blk(c, 32), *blk(32, 32), nn.MaxPool2d(2), *blk(32, 64), *blk(64, 64),
                         nn.MaxPool2d(2), nn.Flatten(), nn.Linear(64 * 7 * 7, 128), nn.ReLU(),
                         nn.Linear(128, n)).eval()


def hw(rows=256, adc=6, **kw):
    h = HardwareConfig().with_overrides({"crossbar.rows": rows, "crossbar.cols": rows,
                                         "device.bits_per_cell": 2, "dac.bits": 1, "adc.bits": adc,
                                         "quant.weight_bits": 8,
                                         "quant.act_bits": 8})
    return h.with_overrides(kw) if kw else h


def timeit(f, reps=3):
    f()
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        f()
        best = min(best, time.perf_counter() - t)
    return best


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--json", default=None)
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--networks", type=int, default=20)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = vgg()
    x = torch.rand(64, 1, 28, 28)
    calib = [torch.rand(64, 1, 28, 28)]
    with torch.no_grad():
        t_float = timeit(lambda: model(x))
        out = {"batch": 64, "input": [1, 28, 28], "threads": a.threads, "weight_bits": 8, "cell_bits": 2,
               "act_bits": 8, "dac_bits": 1, "t_float_s": t_float}
        eff = {}
        for rows in (256, 128, 64):
            pm = to_pim(model, hw(rows), calib_loader=calib, device="cpu")
            lay = next(m for _, m in pm.named_modules() if hasattr(m, "plan"))
            cs = lay.C * lay.S
            t = timeit(lambda pm=pm: pm(x), reps=1)
            eff[rows] = {"t_pim_s": t, "ratio": t / t_float, "chunks_x_slices": cs,
                         "efficiency": t / t_float / cs}
        out["chunks"], out["slices"] = lay.C, lay.S
        out["t_pim_s"] = eff[256]["t_pim_s"]
        out["efficiency"] = eff[256]["efficiency"]
        out["efficiency_by_size"] = {str(k): v["efficiency"] for k, v in eff.items()}
        pm = to_pim(model, hw(256, adc=16), calib_loader=calib, device="cpu")
        t_ll = timeit(lambda: pm(x))
        out["lossless_overhead"] = t_ll / t_float
        pe = to_pim(model, hw(256, adc=6, **{"device.variation": 0.05}), calib_loader=calib, device="cpu")
        pf = to_pim(model, hw(256, adc=6, **{"device.variation": 0.05}), calib_loader=calib, device="cpu",
                    fidelity="fast")
        t_e = timeit(lambda: pe(x), reps=1)
        t_f = timeit(lambda: pf(x))
        out["t_exact_lossy_s"], out["t_fast_s"], out["fast_speedup"] = t_e, t_f, t_e / t_f
    out.update(rank_study(a.networks))
    print(json.dumps(out, indent=2))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=2)


def rank_study(n_nets: int) -> dict:
    """Kendall tau between fast and exact PIM accuracy over small CNNs trained briefly on sklearn digits."""
    from sklearn.datasets import load_digits

    d = load_digits()
    X = torch.tensor(d.images / 16.0, dtype=torch.float32).unsqueeze(1)
    y = torch.tensor(d.target)
    g = torch.Generator().manual_seed(0)
    perm = torch.randperm(len(y), generator=g)
    tr, te = perm[:1300], perm[1300:]
    calib = [X[tr[:256]]]
    test = [(X[te], y[te])]
    rng = np.random.default_rng(0)
    exact, fast, cfgs = [], [], []
    for i in range(n_nets):
        w1, w2 = int(rng.choice([4, 8, 16])), int(rng.choice([8, 16, 32]))
        ep = int(rng.integers(1, 6))
        wb, ab, adc = int(rng.choice([4, 6, 8])), int(rng.choice([4, 6, 8])), int(rng.choice([3, 4, 5, 6]))
        var = float(rng.choice([0.0, 0.05, 0.1, 0.2]))
        torch.manual_seed(i)
        net = nn.Sequential(nn.Conv2d(1, w1, 3, padding=1), nn.BatchNorm2d(w1), nn.ReLU(),
                            nn.Conv2d(w1, w2, 3, padding=1, stride=2), nn.ReLU(), nn.Flatten(),
                            nn.Linear(w2 * 16, 10))
        opt = torch.optim.Adam(net.parameters(), 3e-3)
        net.train()
        for _ in range(ep):
            for b in torch.split(tr[torch.randperm(len(tr))], 64):
                opt.zero_grad()
                nn.functional.cross_entropy(net(X[b]), y[b]).backward()
                opt.step()
        net.eval()
        h = HardwareConfig().with_overrides({"crossbar.rows": 64, "device.bits_per_cell": 2, "dac.bits": 1,
                                             "adc.bits": adc, "quant.weight_bits": wb, "quant.act_bits": ab,
                                             "device.variation": var})
        accs = []
        for fid in ("exact", "fast"):
            pm = to_pim(net, h, calib_loader=calib, device="cpu", fidelity=fid, seed=0)
            set_mode(pm, "analog")
            acc = []
            for chip in range(2):
                set_chip(pm, chip)
                with torch.no_grad():
                    acc.append(float((pm(test[0][0]).argmax(1) == test[0][1]).float().mean()))
            accs.append(float(np.mean(acc)))
        exact.append(accs[0])
        fast.append(accs[1])
        cfgs.append({"widths": [w1, w2], "epochs": ep, "wbits": wb, "abits": ab, "adc": adc,
                     "variation": var})
    tau = kendalltau(exact, fast).statistic
    return {"kendall_tau": float(tau), "rank_networks": n_nets,
            "rank_source": "no trained supernet used: small CNNs trained 1-5 epochs on sklearn digits (8x8), "
                           "random bits/ADC/variation, 64-row crossbars, mean over 2 chips",
            "rank_exact_acc": exact, "rank_fast_acc": fast, "rank_configs": cfgs}


if __name__ == "__main__":
    main()
