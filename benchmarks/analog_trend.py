"""Accuracy trend of a small trained CNN on simulated PIM chips (sklearn digits).

    .venv/bin/python benchmarks/analog_trend.py --json out.json [--threads 1] [--chips 3]

A small CNN (conv 16 - conv 32 - pool - conv 32 - fc 64 - fc 10, BatchNorm folded) is trained on the digits
training split (crossnas.data.load_dataset("digits", seed=0)); ADC ranges are calibrated and activation
ranges measured on training batches; accuracy is measured on the test split (359 images) with the exact
fidelity, mean +- std over --chips chip instances. Hardware: mnsim-default (256x256, differential pair with
analog subtraction, 1-bit cells, 1-bit DAC, kernel-aligned rows) with 8-bit weights and activations. The
largest partial sum is 144 (conv2: 16 channels x 3x3 rows), so an ADC needs 9 bits (signed) to be lossless.

Tables: accuracy vs ADC bits 8..3 for both range policies (full_scale, calibrated); vs programming
variation 0..0.4 (gaussian, relative sigma); vs stuck-off and stuck-on fault rates. Prints markdown,
writes JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from crossnas.analog import evaluate_pim
from crossnas.data import load_dataset
from crossnas.hardware.config import load_hardware

ADC_BITS = (8, 7, 6, 5, 4, 3)
VARIATION = (0.0, 0.05, 0.1, 0.2, 0.4)
STUCK = (0.001, 0.005, 0.01, 0.02, 0.05)


def small_cnn() -> nn.Module:
    def blk(i, o):
        return [nn.Conv2d(i, o, 3, padding=1), nn.BatchNorm2d(o), nn.ReLU()]
    return nn.Sequential(*blk(1, 16), *blk(16, 32), nn.MaxPool2d(2), *blk(32, 32), nn.Flatten(),
                         nn.Linear(32 * 4 * 4, 64), nn.ReLU(), nn.Linear(64, 10))


def train(model: nn.Module, splits, epochs: int, seed: int = 0) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    loader = DataLoader(splits.train, batch_size=64, shuffle=True, generator=g)
    opt = torch.optim.Adam(model.parameters(), 3e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs * len(loader))
    model.train()
    for _ in range(epochs):
        for x, y in loader:
            opt.zero_grad()
            F.cross_entropy(model(x), y).backward()
            opt.step()
            sched.step()
    return model.eval()


def accuracy(model, loader) -> float:
    with torch.no_grad():
        ok = sum(int((model(x).argmax(1) == y).sum()) for x, y in loader)
    return ok / sum(len(y) for _, y in loader)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--json", default=None)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--chips", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--adc-bits", type=int, default=8, help="ADC bits of the variation and fault tables")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    t0 = time.perf_counter()
    splits = load_dataset("digits", seed=0)
    torch.manual_seed(0)  # initial weights and training are reproducible
    model = train(small_cnn(), splits, a.epochs)
    test = DataLoader(splits.test, batch_size=512)
    g = torch.Generator().manual_seed(0)
    calib = [b for _, b in zip(range(2), DataLoader(splits.train, batch_size=64, shuffle=True, generator=g))]
    base = load_hardware("mnsim-default", {"quant.weight_bits": 8, "quant.act_bits": 8})

    def run(**over) -> dict:
        h = base.with_overrides(over)
        r = evaluate_pim(model, test, h, calib_loader=calib, chips=a.chips, fidelity="exact", seed=0,
                         device="cpu")
        return {"settings": over, "mean": r.accuracy_pim, "std": r.accuracy_pim_std, "per_chip": r.per_chip,
                "digital": r.accuracy_digital}

    out: dict = {"threads": a.threads, "chips": a.chips, "test_images": len(splits.test),
                 "train_images": len(splits.train), "hardware": "mnsim-default, 8-bit weights/activations",
                 "float_accuracy": accuracy(model, test)}
    out["adc"] = {rng: [run(**{"adc.bits": b, "adc.range": rng}) for b in ADC_BITS]
                  for rng in ("full_scale", "calibrated")}
    adc = {"adc.bits": a.adc_bits, "adc.range": "calibrated"}
    out["variation"] = [run(**adc, **{"device.variation": v}) for v in VARIATION]
    out["stuck_off"] = [run(**adc, **{"device.stuck_off_rate": r}) for r in STUCK]
    out["stuck_on"] = [run(**adc, **{"device.stuck_on_rate": r}) for r in STUCK]
    out["digital_accuracy"] = out["adc"]["calibrated"][0]["digital"]
    out["seconds"] = time.perf_counter() - t0
    out["loadavg"] = os.getloadavg()
    print(markdown(out, a.adc_bits))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=2)


def _ms(r: dict) -> str:
    return f"{r['mean']:.3f} ± {r['std']:.3f}"


def markdown(out: dict, adc_bits: int) -> str:
    lines = [f"float accuracy {out['float_accuracy']:.3f}, digital (8-bit integers) "
             f"{out['digital_accuracy']:.3f}; PIM exact, mean ± std over {out['chips']} chips, "
             f"{out['test_images']} test images", "",
             "| ADC bits | full_scale | calibrated |", "|---|---|---|"]
    for i, b in enumerate(ADC_BITS):
        lines.append(f"| {b} | {_ms(out['adc']['full_scale'][i])} | {_ms(out['adc']['calibrated'][i])} |")
    lines += ["", f"| variation (sigma) | accuracy ({adc_bits}-bit calibrated ADC) |", "|---|---|"]
    lines += [f"| {v} | {_ms(r)} |" for v, r in zip(VARIATION, out["variation"])]
    lines += ["", f"| fault rate | stuck-off | stuck-on ({adc_bits}-bit calibrated ADC) |", "|---|---|---|"]
    lines += [f"| {s} | {_ms(r0)} | {_ms(r1)} |"
              for s, r0, r1 in zip(STUCK, out["stuck_off"], out["stuck_on"])]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
