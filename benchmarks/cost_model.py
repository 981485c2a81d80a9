"""Cost-model throughput: evaluations per second of an 8-block CNN at batch sizes 1, 100 and 10,000.

Layer tables are traced once and cached (trace time reported separately); hardware varies across the batch
(crossbar size, ADC bits/table, DAC bits, cell bits, packing, placement, duplication). Hardware configs are
compiled to arrays once per batch; both the compiled-only rate and the rate including compilation are given.

On a shared machine the absolute rate moves with the load, so each timed batch is interleaved with a fixed
work NumPy reference kernel (`ref_kernel`: 8 rounds of multiply-add, maximum, exp and a row cumsum over a
(2,000, 64) float64 array) and the rate is also given in kernel units: `batch10000_over_kernel` = time of one
10,000-candidate batch / time of one kernel call, best of the repeats each. Rates are given in wall time and
in this process's CPU time (`time.process_time`), which other processes on a loaded machine barely move.
Usage: python benchmarks/cost_model.py [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
from torch import nn

from crossnas.cost import HardwareArrays, LayerTable, evaluate_batch
from crossnas.hardware import load_hardware
from crossnas.network import extract_layers


def cnn8(width: int = 64) -> nn.Module:
    layers, c = [], 3
    for i in range(8):
        w = width * 2 ** (i // 2)
        layers += [nn.Conv2d(c, w, 3, padding=1), nn.ReLU()]
        if i % 2 == 1:
            layers.append(nn.MaxPool2d(2))
        c = w
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(c * 2 * 2, 10))


def hardware_batch(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    base = load_hardware("mnsim-default")
    variants = []
    for size in (64, 128, 256, 512):
        for adc in (4, 6, 8):
            for cell in (1, 2, 4):
                for packing in ("im2col", "kernel_aligned"):
                    variants.append(base.with_overrides({
                        "crossbar.rows": size, "crossbar.cols": size, "adc.bits": adc, "adc.power_w": None,
                        "adc.energy_table": "murmann", "device.bits_per_cell": cell,
                        "crossbar.row_packing": packing, "dac.bits": int(rng.integers(1, 3)),
                        "crossbar.slice_placement": str(rng.choice(["packed", "per_crossbar"])),
                        "system.duplication": str(rng.choice(["none", "balance"]))}))
    return [variants[i] for i in rng.integers(0, len(variants), n)]


_REF = np.random.default_rng(0).random((2_000, 64))


def ref_kernel(a: np.ndarray = _REF) -> float:
    """Fixed NumPy work of the same flavour as the cost model (element-wise ops and scans on a 2-D array)."""
    x = a
    for _ in range(8):
        x = np.maximum(x * 0.5 + a, 0.1)
        x = np.exp(-x) + np.cumsum(x, axis=1) * 1e-3
    return float(x[0, 0])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--json")
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    layers = extract_layers(cnn8(), (3, 32, 32))
    trace_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    table = LayerTable.from_layers(layers)
    compile_s = time.perf_counter() - t0
    results = {}
    for n in (1, 100, 10_000):
        hws = hardware_batch(n)
        t0 = time.perf_counter()
        hwa = HardwareArrays.from_configs(hws)
        hw_compile_s = time.perf_counter() - t0
        evaluate_batch(table, hwa)  # warm-up
        times, kernel, cpu = [], [], []
        for _ in range(args.repeats):  # interleaved: both see the same load
            c0 = time.process_time()
            times.append(_timed(evaluate_batch, table, hwa))
            cpu.append(time.process_time() - c0)
            kernel.append(_timed(ref_kernel))
        best, kbest, cbest = min(times), min(kernel), min(cpu)
        results[n] = {"seconds": best, "evals_per_second": n / best, "hw_compile_s": hw_compile_s,
                      "evals_per_second_incl_hw_compile": n / (best + hw_compile_s),
                      "cpu_seconds": cbest, "evals_per_cpu_second": n / max(cbest, 1e-9),
                      "kernel_seconds": kbest, "over_kernel": best / kbest}
        print(f"batch {n:>6}: {best * 1e3:9.3f} ms  {n / best:12.0f} evals/s  "
              f"(+ config->arrays {hw_compile_s * 1e3:.1f} ms: {n / (best + hw_compile_s):.0f} evals/s); "
              f"{n / max(cbest, 1e-9):.0f} evals/CPU-s; {best / kbest:.2f} ref-kernel units")
    out = {"trace_s": trace_s, "layer_table_compile_s": compile_s, "layers": len(layers),
           "batches": {str(k): v for k, v in results.items()},
           "evals_per_second": max(v["evals_per_second"] for v in results.values()),
           "batch1_latency_s": results[1]["seconds"], "ref_kernel": ref_kernel.__doc__,
           "batch10000_over_kernel": results[10_000]["over_kernel"],
           "evals_per_second_10000": results[10_000]["evals_per_second"],
           "evals_per_cpu_second_10000": results[10_000]["evals_per_cpu_second"]}
    print(f"trace {trace_s * 1e3:.1f} ms, table {compile_s * 1e3:.2f} ms; "
          f"best {out['evals_per_second']:.0f}/s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)
    return 0


def _timed(fn, *a) -> float:
    t0 = time.perf_counter()
    fn(*a)
    return time.perf_counter() - t0


if __name__ == "__main__":
    raise SystemExit(main())
