"""Analog PIM simulator benchmark: cost of the exact simulation vs the float model, and fast-vs-exact ranking.

    .venv/bin/python benchmarks/analog_sim.py --json out.json [--threads 1] [--networks 20]
        [--supernet CKPT] [--epochs 30] [--val-fraction 0.7] [--skip-rank] [--skip-speed]

Speed (VGG-style CNN, 1x28x28 inputs, batch 64, CPU): float forward and PIM forward of the same model,
timed interleaved (`--rounds` rounds, best of each). Times are process CPU time by default, so that a
shared machine's load does not enter the ratio (with --threads 1 it equals wall time on an idle machine);
--wall uses wall-clock time. Settings of the contract:
256x256 crossbars, 8-bit weights in 2-bit cells, 8-bit activations with 1-bit DACs (so 8 input chunks x 4
weight slices), 6-bit ADC (lossy from the second conv on), ideal devices.
- `efficiency` = (PIM exact time / float time) / (chunks x slices); `efficiency_by_size` for 128 and 64 rows;
- `lossless_overhead` = PIM time / float time with a 16-bit (lossless) ADC;
- `fast_speedup` = exact time / fast time, 6-bit ADC and 5% variation.

Ranking: `kendall_tau` between fast and exact PIM accuracy (mean over `--chips` chips, the same chip seeds
for both) over `--networks` random subnets of a trained demo supernet (space preset "demo", sklearn digits
via crossnas.data.load_dataset("digits", seed=0, val_fraction=--val-fraction)). Each subnet draws its
bits/crossbar/DAC/ADC/cell genes from the space as the search would, plus a random programming variation;
BN is recalibrated per subnet on training batches, ADC ranges are calibrated on training batches, and
accuracy is scored on the first 1,000 validation images. The default --val-fraction 0.7 is what gives the
digits validation split >= 1,000 images (1,007; training keeps 431): the standard 0.1 split has only 144.
Without --supernet CKPT the demo supernet is trained here first (SupernetTrainConfig(epochs=--epochs,
batch_size=32, lr=0.05): 1,400 steps on the 431 training images, about 15 s on one core; 30 epochs at batch
64 leave it near 35% accuracy on this small training split).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

import numpy as np
import torch
from scipy.stats import kendalltau, spearmanr
from torch import nn
from torch.utils.data import DataLoader, Subset

from crossnas.analog import evaluate_pim, pim_layers, to_pim
from crossnas.analog.kernels import probe
from crossnas.hardware.config import HardwareConfig, load_hardware


def vgg(c=1, n=10):
    def blk(i, o):
        return [nn.Conv2d(i, o, 3, padding=1), nn.BatchNorm2d(o), nn.ReLU()]
    return nn.Sequential(*blk(c, 32), *blk(32, 32), nn.MaxPool2d(2), *blk(32, 64), *blk(64, 64),
                         nn.MaxPool2d(2), nn.Flatten(), nn.Linear(64 * 7 * 7, 128), nn.ReLU(),
                         nn.Linear(128, n)).eval()


def hw(rows=256, adc=6, **kw):
    h = HardwareConfig().with_overrides({"crossbar.rows": rows, "crossbar.cols": rows,
                                         "device.bits_per_cell": 2, "dac.bits": 1, "adc.bits": adc,
                                         "adc.range": "full_scale", "quant.weight_bits": 8,
                                         "quant.act_bits": 8})
    return h.with_overrides(kw) if kw else h


CLOCK = time.process_time  # CPU time of this process (set to time.perf_counter by --wall)


def _once(f) -> float:
    t = CLOCK()
    f()
    return CLOCK() - t


def paired(f_ref, f, rounds: int) -> tuple[float, float]:
    """Best-of-`rounds` times of f_ref and f, interleaved so both see the same machine load."""
    f_ref()
    f()
    a, b = [], []
    for _ in range(rounds):
        a.append(min(_once(f_ref) for _ in range(3)))
        b.append(_once(f))
    return min(a), min(b)


def speed(rounds: int) -> dict:
    torch.manual_seed(0)
    model = vgg()
    x = torch.rand(64, 1, 28, 28)
    calib = [torch.rand(64, 1, 28, 28)]
    out: dict = {"batch": 64, "input": [1, 28, 28], "weight_bits": 8, "cell_bits": 2, "act_bits": 8,
                 "dac_bits": 1, "adc_bits": 6, "rounds": rounds}
    out["kernel_probe"] = probe()
    with torch.inference_mode():
        kt = {}
        for k in ("float32", "int8", "auto"):  # forced kernels side by side (int8: one round, it can be slow)
            pm = to_pim(model, hw(256), calib_loader=calib, device="cpu", kernel=k)
            kt[k] = paired(lambda: model(x), lambda pm=pm: pm(x), rounds if k != "int8" else 1)[1]
        out["kernel_seconds"] = kt
        out["kernel_pick_ratio"] = kt["auto"] / min(kt["int8"], kt["float32"])  # goal <= 1.05
        eff = {}
        for rows in (256, 128, 64):
            pm = to_pim(model, hw(rows), calib_loader=calib, device="cpu")
            lay = pim_layers(pm)[1][1]
            cs = lay.C * lay.S
            tf, tp = paired(lambda: model(x), lambda pm=pm: pm(x), rounds)
            eff[rows] = {"t_float_s": tf, "t_pim_s": tp, "ratio": tp / tf, "chunks_x_slices": cs,
                         "efficiency": tp / tf / cs,
                         "lossy_layers": [n for n, m in pim_layers(pm) if m._route().value == "sliced"]}
        out["chunks"], out["slices"] = lay.C, lay.S
        out["t_float_s"], out["t_pim_s"] = eff[256]["t_float_s"], eff[256]["t_pim_s"]
        out["efficiency"] = eff[256]["efficiency"]
        out["efficiency_by_size"] = {str(k): v["efficiency"] for k, v in eff.items()}
        out["by_size"] = {str(k): v for k, v in eff.items()}
        pm = to_pim(model, hw(256, adc=16), calib_loader=calib, device="cpu")
        tf, tl = paired(lambda: model(x), lambda: pm(x), rounds)
        out["lossless_overhead"] = tl / tf
        out["t_lossless_s"], out["t_float_lossless_run_s"] = tl, tf
        hv = hw(256, adc=6, **{"device.variation": 0.05})
        pe = to_pim(model, hv, calib_loader=calib, device="cpu")
        pf = to_pim(model, hv, calib_loader=calib, device="cpu", fidelity="fast")
        tf_, te = paired(lambda: pf(x), lambda: pe(x), rounds)
        out["t_exact_lossy_var_s"], out["t_fast_s"], out["fast_speedup"] = te, tf_, te / tf_
    return out


def demo_timing(n_images: int = 1000) -> dict:
    """Exact simulation of a demo-space digits network on mnsim-default: seconds per 1,000 images (goal
    <= 5 s at one thread), and aihwkit-lightning on the same network, batch and threads when installed."""
    from crossnas.data import load_dataset
    from crossnas.space import get_space_preset
    from crossnas.supernet import Supernet

    splits = load_dataset("digits", seed=0, val_fraction=0.7)
    space = get_space_preset("demo", input_size=splits.input_size)
    torch.manual_seed(0)
    sup = Supernet.from_space(space, splits.in_channels, splits.num_classes, splits.input_size)
    genome = space.sample(np.random.default_rng(0), 1)[0]
    net = sup.extract(space.to_arch(genome).network).eval()
    n = min(n_images, len(splits.val))
    xs = torch.stack([splits.val[i][0] for i in range(n)])
    calib = [xs[:64]]
    out: dict = {"demo_images": n}
    with torch.inference_mode():
        pm = to_pim(net, load_hardware("mnsim-default"), calib_loader=calib, device="cpu")
        t = CLOCK()
        for b in xs.split(250):
            pm(b)
        out["demo_exact_s_per_1000"] = (CLOCK() - t) * 1000 / n
        t = CLOCK()
        for b in xs.split(250):
            net(b)
        out["demo_float_s_per_1000"] = (CLOCK() - t) * 1000 / n
    try:
        from aihwkit_lightning.nn import AnalogConv2d, AnalogLinear
        from aihwkit_lightning.nn.conversion import convert_to_analog
        from aihwkit_lightning.simulator.configs import TorchInferenceRPUConfig
    except ImportError:
        out["aihwkit_lightning"] = "not installed"
        return out
    from crossnas.quant import QuantConv2d, QuantLinear

    # 9-bit inputs and a 6-bit ADC over 256-row tiles as mnsim-default; its ADC bound is per (tile, column)
    cfg = TorchInferenceRPUConfig()
    cfg.forward.inp_res, cfg.forward.out_res, cfg.forward.out_bound = 2**9 - 2, 2**6 - 2, 10.0
    cfg.pre_post.input_range.enable = True
    cfg.mapping.max_input_size = 256
    cmap = {nn.Conv2d: AnalogConv2d, QuantConv2d: AnalogConv2d, nn.Linear: AnalogLinear,
            QuantLinear: AnalogLinear}
    an = convert_to_analog(net, cfg, conversion_map=cmap).eval()
    out["aihwkit_lightning_layers"] = sum(isinstance(m, (AnalogConv2d, AnalogLinear)) for m in an.modules())
    with torch.inference_mode():
        an(calib[0])
        t = CLOCK()
        for b in xs.split(250):
            an(b)
        out["aihwkit_lightning_s_per_1000"] = (CLOCK() - t) * 1000 / n
    return out


# ------------------------------------------------------------------------------------------------ ranking
def demo_supernet(splits, ckpt: str | None, epochs: int, seed: int = 0):
    from crossnas.space import get_space_preset
    from crossnas.supernet import Supernet
    from crossnas.supernet.train import SupernetTrainConfig, load_checkpoint, train_supernet

    space = get_space_preset("demo", input_size=splits.input_size)
    torch.manual_seed(seed)  # the supernet's initial weights
    net = Supernet.from_space(space, splits.in_channels, splits.num_classes, splits.input_size)
    info: dict = {}
    if ckpt:
        load_checkpoint(net, ckpt)
        info["supernet"] = ckpt
    else:
        t, tc = time.perf_counter(), time.process_time()
        with tempfile.TemporaryDirectory() as d:
            hist = train_supernet(net, splits, SupernetTrainConfig(epochs=epochs, batch_size=32, lr=0.05,
                                                                   seed=seed, device="cpu"),
                                  d, progress=False)
        info.update(supernet=f"trained here: demo space, {epochs} epochs, batch 32, lr 0.05, seed {seed}",
                    train_seconds=time.perf_counter() - t, train_cpu_seconds=time.process_time() - tc,
                    train_acc=hist[-1]["train_acc"],
                    val_acc_sampled=hist[-1].get("val_acc_mean"))
    return space, net.cpu().eval(), info


def rank_study(n_nets: int, ckpt: str | None, epochs: int, val_fraction: float, chips: int,
               hardware: str, adc_range: str | None = None, seed: int = 0) -> dict:
    """Kendall tau between fast and exact PIM accuracy over random subnets of a trained demo supernet."""
    from crossnas.data import load_dataset
    from crossnas.supernet import recalibrate_bn

    splits = load_dataset("digits", seed=0, val_fraction=val_fraction)
    space, supernet, info = demo_supernet(splits, ckpt, epochs, seed)
    n_val = min(1000, len(splits.val))
    val = DataLoader(Subset(splits.val, range(n_val)), batch_size=250)
    gen = torch.Generator().manual_seed(seed)
    train = DataLoader(splits.train, batch_size=64, shuffle=True, generator=gen)

    def train_batches(n):
        gen.manual_seed(seed)  # the same training batches for every subnet
        return [b for _, b in zip(range(n), train)]

    base = load_hardware(hardware, {"adc.range": adc_range} if adc_range else None)
    rng = np.random.default_rng(seed)
    rows, exact, fast, t_exact, t_fast = [], [], [], 0.0, 0.0
    for genome in space.sample(rng, n_nets):
        arch = space.to_arch(genome)
        var = float(rng.choice([0.0, 0.02, 0.05, 0.1, 0.2]))
        h = base.with_overrides({**arch.hardware, "device.variation": var})
        net = supernet.extract(arch.network)
        recalibrate_bn(net, train_batches(10), n_batches=10, seed=seed)
        net.eval()
        calib = train_batches(2)
        accs = {}
        for fid in ("exact", "fast"):
            t = time.perf_counter()
            accs[fid] = evaluate_pim(net, val, h, calib_loader=calib, chips=chips, fidelity=fid, seed=seed,
                                     device="cpu")
            dt = time.perf_counter() - t
            t_exact, t_fast = (t_exact + dt, t_fast) if fid == "exact" else (t_exact, t_fast + dt)
        exact.append(accs["exact"].accuracy_pim)
        fast.append(accs["fast"].accuracy_pim)
        rows.append({"blocks": [f"{b.kind}:{b.width}:w{b.wbits}a{b.abits}" for b in arch.network.blocks],
                     "rows": h.crossbar.rows, "dac": h.dac.bits, "adc": h.adc.bits,
                     "cell": h.device.bits_per_cell, "variation": var,
                     "digital": accs["exact"].accuracy_digital, "exact": exact[-1], "fast": fast[-1],
                     "exact_std": accs["exact"].accuracy_pim_std, "fast_std": accs["fast"].accuracy_pim_std})
        print(json.dumps(rows[-1]), flush=True)
    tau = kendalltau(exact, fast).statistic
    return {"kendall_tau": float(tau), "spearman": float(spearmanr(exact, fast).statistic),
            "rank_networks": n_nets, "rank_val_images": n_val, "rank_val_fraction": val_fraction,
            "rank_train_images": len(splits.train), "rank_chips": chips, "rank_hardware": hardware,
            "rank_adc_range": base.adc.range,
            "rank_mean_abs_diff": float(np.mean(np.abs(np.array(exact) - np.array(fast)))),
            "rank_t_exact_s": t_exact, "rank_t_fast_s": t_fast, **{f"rank_{k}": v for k, v in info.items()},
            "rank_subnets": rows}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--json", default=None)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--networks", type=int, default=20)
    ap.add_argument("--chips", type=int, default=2)
    ap.add_argument("--supernet", default=None,
                    help="a train_supernet checkpoint of the demo space on digits")
    ap.add_argument("--epochs", type=int, default=100)
    ap.add_argument("--val-fraction", type=float, default=0.7)
    ap.add_argument("--hardware", default="mnsim-default")
    ap.add_argument("--adc-range", choices=["full_scale", "calibrated"], default=None,
                    help="ADC range policy of the ranking study (default: the hardware config's)")
    ap.add_argument("--wall", action="store_true", help="wall-clock times instead of process CPU time")
    ap.add_argument("--skip-speed", action="store_true")
    ap.add_argument("--skip-rank", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    global CLOCK
    CLOCK = time.perf_counter if a.wall else time.process_time
    out: dict = {"threads": a.threads, "clock": "wall" if a.wall else "process_cpu",
                 "torch": torch.__version__, "loadavg_start": os.getloadavg()}
    if not a.skip_speed:
        out.update(demo_timing())
        print(json.dumps(out, indent=2), flush=True)
        out.update(speed(a.rounds))
        print(json.dumps({k: v for k, v in out.items() if k != "by_size"}, indent=2), flush=True)
    if not a.skip_rank:
        out.update(rank_study(a.networks, a.supernet, a.epochs, a.val_fraction, a.chips, a.hardware,
                              a.adc_range))
    out["loadavg_end"] = os.getloadavg()
    print(json.dumps({k: v for k, v in out.items() if k not in ("rank_subnets", "by_size")}, indent=2))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=2)


if __name__ == "__main__":
    main()
