"""Scale-out benchmark: candidates/s with 1 and 2 workers (one torch thread each), Ray vs process pool.

Evaluators:
  crosslayer  CrossLayerEvaluator on the digits "demo" supernet (untrained weights: the cost of an
              evaluation does not depend on them), fast fidelity, 128 validation images, 2 BN batches.
  cheap       ~20 ms of single-thread torch matmuls per candidate (compute-bound, like a real evaluator,
              unlike a sleep).
  noop        returns a constant; its wall time per candidate is pure scheduling overhead.
For each backend and worker count: one untimed warm-up batch (starts workers, ships the evaluator), then
`--rounds` timed `map` calls of `--batch` candidates each, as the search engine issues one per
generation. `overhead_ms_per_candidate` = (wall time - evaluation time on the critical path) per
candidate, with the noop evaluator, Ray, 2 actors, batches of `--noop-batch`; the same quantity with the
crosslayer evaluator is reported alongside (goal < 5 ms). `speedup_2_workers` = candidates/s of Ray with 2
actors over Ray with 1 actor, crosslayer evaluator (goal >= 1.5 on a 2-core machine).

The machine this runs on may be shared: the load average before and after is recorded; rerun with
`--repeats 3` (best of) when it is noisy.

Usage: python benchmarks/scale.py [--json out.json] [--rounds 3] [--batch 8] [--repeats 1]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class Timed:
    """Wraps an evaluator; each result carries its chunk's wall-clock span (one clock for all processes)."""

    inner: object

    def __call__(self, archs):
        t0 = time.time()
        out = self.inner(archs)
        t1 = time.time()
        return [{**m, "_t0": t0, "_t1": t1} for m in out]


def cheap(archs):
    out = []
    for a in archs:
        x = torch.full((96, 96), 0.01 * (1 + a["i"] % 7))
        for _ in range(200):
            x = torch.tanh(x @ x)
        out.append({"v": float(x.sum())})
    return out


def noop(archs):
    return [{"v": 0.0} for _ in archs]


def crosslayer():
    from crossnas.data import load_dataset
    from crossnas.hardware import load_hardware
    from crossnas.search.crosslayer import CrossLayerEvaluator
    from crossnas.space import get_space_preset
    from crossnas.supernet import Supernet

    splits = load_dataset("digits", seed=0, limit=400)
    space = get_space_preset("demo", input_size=splits.input_size)
    torch.manual_seed(0)
    sn = Supernet.from_space(space, splits.in_channels, splits.num_classes, splits.input_size)
    shape = (splits.in_channels, splits.input_size, splits.input_size)
    ev = CrossLayerEvaluator(space, sn, splits.train, splits.val, load_hardware("mnsim-default"), shape,
                             fidelity="fast", val_limit=128, bn_batches=2, batch_size=64)
    return space, ev


def measure(backend, evaluate, archs, rounds):
    """(candidates/s, overhead ms/candidate) over `rounds` maps of `archs` after one warm-up map."""
    timed = Timed(evaluate)
    backend.map(timed, archs)  # warm-up: workers hold the evaluator; timed rounds send only archs
    wall = crit = 0.0
    for _ in range(rounds):
        t0 = time.perf_counter()
        res = backend.map(timed, archs)
        w = time.perf_counter() - t0
        spans = {(r["_t0"], r["_t1"]) for r in res}
        wall += w
        crit += max(t1 - t0 for t0, t1 in spans)
    n = rounds * len(archs)
    return n / wall, 1e3 * max(wall - crit, 0.0) / n


def make(kind, workers):
    from crossnas.search import ProcessPoolBackend
    from crossnas.search.ray_backend import RayBackend

    return RayBackend(actors=workers) if kind == "ray" else ProcessPoolBackend(workers)


def run(args):
    import ray

    torch.set_num_threads(1)
    space, ev = crosslayer()
    rng = np.random.default_rng(0)
    cl_archs = [space.decode(g) for g in space.sample(rng, args.batch)]
    cheap_archs = [{"i": i} for i in range(4 * args.batch)]
    noop_archs = [{"i": i} for i in range(args.noop_batch)]
    # one local Ray for every configuration; each RayBackend joins it and starts its own actors
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    rows = []
    try:
        for kind in ("ray", "process"):
            for workers in (1, 2):
                b = make(kind, workers)
                try:
                    for name, fn, archs, rounds in (("crosslayer", ev, cl_archs, args.rounds),
                                                    ("cheap", cheap, cheap_archs, args.rounds),
                                                    ("noop", noop, noop_archs, 5 * args.rounds)):
                        best = max((measure(b, fn, archs, rounds) for _ in range(args.repeats)),
                                   key=lambda r: r[0])
                        rows.append({"backend": kind, "workers": workers, "evaluator": name,
                                     "batch": len(archs), "candidates_per_s": best[0],
                                     "overhead_ms_per_candidate": best[1]})
                finally:
                    b.close()
    finally:
        ray.shutdown()
    return rows


def pick(rows, backend, workers, evaluator, key):
    return next(r[key] for r in rows if (r["backend"], r["workers"], r["evaluator"]) == (backend, workers,
                                                                                          evaluator))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", default=None)
    ap.add_argument("--rounds", type=int, default=3, help="timed maps per configuration")
    ap.add_argument("--batch", type=int, default=8, help="crosslayer candidates per map (cheap: 4x)")
    ap.add_argument("--noop-batch", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=1, help="best of this many measurements")
    args = ap.parse_args(argv)
    load0 = os.getloadavg()
    rows = run(args)
    load1 = os.getloadavg()
    print(f"{'backend':<8} {'workers':>7} {'evaluator':<10} {'batch':>5} {'cand/s':>9} "
          f"{'overhead ms/cand':>17}")
    for r in rows:
        print(f"{r['backend']:<8} {r['workers']:>7} {r['evaluator']:<10} {r['batch']:>5} "
              f"{r['candidates_per_s']:>9.2f} {r['overhead_ms_per_candidate']:>17.2f}")
    out = {
        "speedup_2_workers": pick(rows, "ray", 2, "crosslayer", "candidates_per_s")
        / pick(rows, "ray", 1, "crosslayer", "candidates_per_s"),
        "overhead_ms_per_candidate": pick(rows, "ray", 2, "noop", "overhead_ms_per_candidate"),
        "overhead_ms_per_candidate_crosslayer": pick(rows, "ray", 2, "crosslayer",
                                                     "overhead_ms_per_candidate"),
        "speedup_2_workers_cheap": pick(rows, "ray", 2, "cheap", "candidates_per_s")
        / pick(rows, "ray", 1, "cheap", "candidates_per_s"),
        "speedup_2_workers_process": pick(rows, "process", 2, "crosslayer", "candidates_per_s")
        / pick(rows, "process", 1, "crosslayer", "candidates_per_s"),
        "cpu_count": os.cpu_count(), "loadavg_before": load0, "loadavg_after": load1,
        "args": vars(args), "rows": rows,
    }
    print(f"speedup_2_workers (ray, crosslayer) {out['speedup_2_workers']:.2f}; cheap "
          f"{out['speedup_2_workers_cheap']:.2f}; process pool {out['speedup_2_workers_process']:.2f}")
    print(f"overhead_ms_per_candidate (ray, 2 actors, noop) {out['overhead_ms_per_candidate']:.2f}; "
          f"crosslayer {out['overhead_ms_per_candidate_crosslayer']:.2f}")
    print(f"load average before {load0[0]:.2f}, after {load1[0]:.2f} on {os.cpu_count()} CPUs")
    if args.json:
        from crossnas.search.store import atomic_write

        atomic_write(args.json, json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
