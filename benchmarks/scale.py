"""Scale-out benchmark: candidates/s with 1 and 2 workers (one torch thread each), Ray vs process pool.

Evaluators:
  crosslayer  CrossLayerEvaluator on the digits "demo" supernet (untrained weights: the cost of an
              evaluation does not depend on them), fast fidelity, 128 validation images, 2 BN batches.
  cheap       ~20 ms of single-thread torch matmuls per candidate (compute-bound, like a real evaluator,
              unlike a sleep).
  noop        returns a constant; its wall time per candidate is pure scheduling overhead.
For each backend and worker count: one untimed warm-up batch (ships the evaluator), then `--rounds`
timed `map` calls of `--batch` candidates each, as the search engine issues one per generation.
`overhead_ms_per_candidate` = (wall time - evaluation time on the critical path) per candidate, with the
noop evaluator, Ray, 2 actors, batches of `--noop-batch`; the same quantity with the crosslayer
evaluator is reported alongside (goal < 5 ms). `speedup_2_workers` = candidates/s of Ray with 2 actors
over Ray with 1 actor, crosslayer evaluator (goal >= 1.5 on a 2-core machine).

`cores_used` = CPU seconds the workers spent evaluating / wall seconds: about 1 per worker on an idle
machine; less when other processes take the cores, which caps the speed-up whatever the backend.
The machine this runs on may be shared: the load average before and after is recorded; rerun with
more `--rounds` when it is noisy. All four configurations stay alive and take turns round by round, so
a change in background load affects 1 and 2 workers alike.

Usage: python benchmarks/scale.py [--json out.json] [--rounds 4] [--batch 8]
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
        t0, c0 = time.time(), time.process_time()
        out = self.inner(archs)
        t1, c1 = time.time(), time.process_time()
        return [{**m, "_t0": t0, "_t1": t1, "_cpu": c1 - c0} for m in out]


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


def timed_map(backend, timed, archs):
    """(wall s, evaluation s on the critical path, CPU s spent evaluating) of one map."""
    t0 = time.perf_counter()
    res = backend.map(timed, archs)
    wall = time.perf_counter() - t0
    chunks = {(r["_t0"], r["_t1"], r["_cpu"]) for r in res}
    return wall, max(t1 - t0 for t0, t1, _ in chunks), sum(c for _, _, c in chunks)


CONFIGS = (("ray", 1), ("ray", 2), ("process", 1), ("process", 2))


def run(args):
    import ray

    from crossnas.search import ProcessPoolBackend
    from crossnas.search.ray_backend import RayBackend

    torch.set_num_threads(1)
    space, ev = crosslayer()
    rng = np.random.default_rng(0)
    cl_archs = [space.decode(g) for g in space.sample(rng, args.batch)]
    cheap_archs = [{"i": i} for i in range(4 * args.batch)]
    noop_archs = [{"i": i} for i in range(args.noop_batch)]
    # every configuration is alive at once and they take turns round by round, so load from other
    # processes on a shared machine hits 1 and 2 workers alike; idle actors cost no CPU, hence 3 logical
    # CPUs for the 1 + 2 actors on 2 cores
    ray.init(num_cpus=3, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    backends = {}
    rows = []
    try:
        for kind, w in CONFIGS:
            backends[kind, w] = RayBackend(actors=w) if kind == "ray" else ProcessPoolBackend(w)
        for name, fn, archs, rounds in (("crosslayer", ev, cl_archs, args.rounds),
                                        ("cheap", cheap, cheap_archs, args.rounds),
                                        ("noop", noop, noop_archs, 5 * args.rounds)):
            timed = Timed(fn)
            for b in backends.values():
                b.map(timed, archs)  # warm-up: workers hold the evaluator; timed rounds send only archs
            per = {c: [] for c in CONFIGS}
            for _ in range(rounds):
                for c in CONFIGS:
                    per[c].append(timed_map(backends[c], timed, archs))
            for (kind, w), ms in per.items():
                wall, crit, cpu = (sum(m[j] for m in ms) for j in range(3))
                n = len(ms) * len(archs)
                rows.append({"backend": kind, "workers": w, "evaluator": name, "batch": len(archs),
                             "candidates_per_s": n / wall,
                             "overhead_ms_per_candidate": 1e3 * max(wall - crit, 0.0) / n,
                             "cores_used": cpu / wall})
    finally:
        for b in backends.values():
            b.close()
        ray.shutdown()
    return rows


def pick(rows, backend, workers, evaluator, key):
    return next(r[key] for r in rows if (r["backend"], r["workers"], r["evaluator"]) == (backend, workers,
                                                                                          evaluator))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", default=None)
    ap.add_argument("--rounds", type=int, default=4, help="timed maps per configuration")
    ap.add_argument("--batch", type=int, default=8, help="crosslayer candidates per map (cheap: 4x)")
    ap.add_argument("--noop-batch", type=int, default=20)
    args = ap.parse_args(argv)
    load0 = os.getloadavg()
    rows = run(args)
    load1 = os.getloadavg()
    print(f"{'backend':<8} {'workers':>7} {'evaluator':<10} {'batch':>5} {'cand/s':>9} "
          f"{'overhead ms/cand':>17} {'cores used':>10}")
    for r in rows:
        print(f"{r['backend']:<8} {r['workers']:>7} {r['evaluator']:<10} {r['batch']:>5} "
              f"{r['candidates_per_s']:>9.2f} {r['overhead_ms_per_candidate']:>17.2f} "
              f"{r['cores_used']:>10.2f}")
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
        "cores_used_ray_crosslayer": {w: pick(rows, "ray", w, "crosslayer", "cores_used") for w in (1, 2)},
        "cpu_count": os.cpu_count(), "loadavg_before": load0, "loadavg_after": load1,
        "args": vars(args), "rows": rows,
    }
    print(f"speedup_2_workers (ray, crosslayer) {out['speedup_2_workers']:.2f}; cheap "
          f"{out['speedup_2_workers_cheap']:.2f}; process pool {out['speedup_2_workers_process']:.2f}")
    print(f"overhead_ms_per_candidate (ray, 2 actors, noop) {out['overhead_ms_per_candidate']:.2f}; "
          f"crosslayer {out['overhead_ms_per_candidate_crosslayer']:.2f}")
    cu = out["cores_used_ray_crosslayer"]
    print(f"cores used by ray crosslayer workers: {cu[1]:.2f} (1 worker), {cu[2]:.2f} (2 workers)")
    print(f"load average before {load0[0]:.2f}, after {load1[0]:.2f} on {os.cpu_count()} CPUs")
    if args.json:
        from crossnas.search.store import atomic_write

        atomic_write(args.json, json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
