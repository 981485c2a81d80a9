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

Array size (--sizes-only runs just this table): a wider CNN whose layers fill the arrays (conv 32 - conv 32
- pool - conv 64 - fc 64 - fc 10: K = 288, 288 and 1,024 rows for three of its five layers, so >= 256 rows
for the largest array) on rram-realistic at its 6-bit ADC, crossbars of 32..256 rows (square), with every
effect on, with IR drop off (device.effects_off: [ir_drop]) and with every read effect off.
`--save-model PATH` saves its weights for `crossnas simulate --model benchmarks/analog_trend.py:wide_cnn`.
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


SIZES = (32, 64, 128, 256)
ABLATIONS = {"all effects": [], "IR drop off": ["ir_drop"],
             "read effects off": ["ir_drop", "read_noise", "adc_offset", "adc_inl"]}


def wide_cnn(in_channels: int = 1, num_classes: int = 10, input_size: int = 8) -> nn.Module:
    """Layers that fill the arrays: K = 288, 288 and 1,024 unrolled rows (8x8 digits)."""
    def blk(i, o):
        return [nn.Conv2d(i, o, 3, padding=1), nn.BatchNorm2d(o), nn.ReLU()]
    side = input_size // 2
    return nn.Sequential(*blk(in_channels, 32), *blk(32, 32), nn.MaxPool2d(2), *blk(32, 64), nn.Flatten(),
                         nn.Linear(64 * side * side, 64), nn.ReLU(), nn.Linear(64, num_classes))


def size_table(splits, test, calib, chips: int, epochs: int) -> dict:
    torch.manual_seed(0)
    model = train(wide_cnn(), splits, epochs)
    base = load_hardware("rram-realistic", {"quant.weight_bits": 8, "quant.act_bits": 8})
    out: dict = {"hardware": "rram-realistic, 8-bit weights/activations", "adc_bits": base.adc.bits,
                 "float_accuracy": accuracy(model, test), "rows": {}}
    for name, off in ABLATIONS.items():
        rows = []
        for r in SIZES:
            h = base.with_overrides({"crossbar.rows": r, "crossbar.cols": r, "device.effects_off": off})
            res = evaluate_pim(model, test, h, calib_loader=calib, chips=chips, fidelity="exact", seed=0,
                               device="cpu")
            rows.append({"rows": r, "mean": res.accuracy_pim, "std": res.accuracy_pim_std,
                         "per_chip": res.per_chip, "digital": res.accuracy_digital})
            print(json.dumps({"ablation": name, **rows[-1]}), flush=True)
        out["rows"][name] = rows
    out["model"] = model
    return out


def size_markdown(t: dict) -> str:
    dig = t["rows"]["all effects"][0]["digital"]
    lines = [f"wide CNN, float accuracy {t['float_accuracy']:.3f}, digital {dig:.3f}; {t['hardware']}, "
             f"{t['adc_bits']}-bit ADC, PIM exact, mean ± std over chips", "",
             "| rows x cols | " + " | ".join(ABLATIONS) + " |", "|---|" + "---|" * len(ABLATIONS)]
    for i, r in enumerate(SIZES):
        lines.append(f"| {r} | " + " | ".join(_ms(t["rows"][n][i]) for n in ABLATIONS) + " |")
    return "\n".join(lines)


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
    ap.add_argument("--sizes-only", action="store_true", help="only the array-size table")
    ap.add_argument("--save-model", default=None, help="save the wide CNN's state_dict here")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    t0 = time.perf_counter()
    splits = load_dataset("digits", seed=0)
    torch.manual_seed(0)  # initial weights and training are reproducible
    model = train(small_cnn(), splits, a.epochs)
    test = DataLoader(splits.test, batch_size=512)
    g = torch.Generator().manual_seed(0)
    calib = [b for _, b in zip(range(2), DataLoader(splits.train, batch_size=64, shuffle=True, generator=g))]
    sizes = size_table(splits, test, calib, a.chips, a.epochs)
    if a.save_model:
        torch.save(sizes["model"].state_dict(), a.save_model)
    del sizes["model"]
    print(size_markdown(sizes))
    if a.sizes_only:
        if a.json:
            with open(a.json, "w") as f:
                info = {"loadavg": os.getloadavg(), "seconds": time.perf_counter() - t0}
                json.dump({"sizes": sizes, **info}, f, indent=2)
        return
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
    out["sizes"] = sizes
    out["seconds"] = time.perf_counter() - t0
    out["loadavg"] = os.getloadavg()
    print(markdown(out, a.adc_bits))
    print(size_markdown(sizes))
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
