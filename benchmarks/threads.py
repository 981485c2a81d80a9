"""Thread-policy benchmark: `auto` against fixed 1 and 2 intra-op threads on supernet training steps,
idle and under a load this script makes itself (one busy process per core), settings interleaved.

    PYTHONPATH=src .venv/bin/python benchmarks/threads.py --json out.json [--reps 3] [--scale 1]

Run it once as is (OMP_WAIT_POLICY=PASSIVE, crossnas's default) and once with OMP_WAIT_POLICY=ACTIVE (the
spinning waits torch gets without it) to see what the wait policy changes.
Workloads: the demo supernet (digits 8x8, batch 64) and the small28 supernet (28x28, batch 128), uniform
single-path steps (forward, backward, SGD update) on seeded random data and paths, the same paths for
every setting. Per condition and workload: mean seconds per step of each setting and `auto / best`
(goal <= 1.15). `auto` is re-resolved (affinity cores, 1-minute load average) at the start of every
timed block, as a run would resolve it at its start; under load the script first waits until the load
average shows the busy processes (`--settle` seconds at most).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import time

from crossnas.threads import set_omp_defaults

set_omp_defaults()  # before torch loads its OpenMP runtime, as `import crossnas` does for the CLI

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from crossnas.space import get_space_preset  # noqa: E402
from crossnas.supernet import Supernet  # noqa: E402
from crossnas.threads import largest_step_macs, machine_cores, resolve_threads  # noqa: E402

# name: (space preset, input size, batch, steps per timed block)
WORKLOADS = {"demo": ("demo", 8, 64, 30), "small28": ("small28", 28, 128, 3)}


def _spin() -> None:
    while True:
        pass


def _workload(name: str):
    preset, size, batch, _ = WORKLOADS[name]
    space = get_space_preset(preset, input_size=size)
    torch.manual_seed(0)
    net = Supernet.from_space(space, 1, 10, size).train()
    opt = torch.optim.SGD(net.parameters(), lr=1e-3, momentum=0.9)
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(batch, 1, size, size, generator=g), torch.randint(0, 10, (batch,), generator=g)
    return space, net, opt, x, y, largest_step_macs(space, 1, batch)


def _time(net, opt, x, y, paths, threads: int) -> float:
    torch.set_num_threads(threads)
    t0 = time.perf_counter()
    for arch in paths:
        loss = F.cross_entropy(net(x, arch), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return (time.perf_counter() - t0) / len(paths)


def measure(condition: str, reps: int, scale: float) -> list[dict]:
    rows = []
    for name in WORKLOADS:
        space, net, opt, x, y, work = _workload(name)
        rng = np.random.default_rng(1)
        _time(net, opt, x, y, [net.sample_arch(rng)], 1)  # warm-up
        times: dict[str, list[float]] = {"auto": [], "1": [], "2": []}
        chosen, steps = [], max(1, round(WORKLOADS[name][3] * scale))
        for _ in range(reps):
            paths = [net.sample_arch(rng) for _ in range(steps)]
            for setting in ("auto", "1", "2"):
                n = resolve_threads("auto", work).intra_op if setting == "auto" else int(setting)
                if setting == "auto":
                    chosen.append(n)
                times[setting].append(_time(net, opt, x, y, paths, n))
        mean = {k: float(np.mean(v)) for k, v in times.items()}
        best = min(mean.values())
        rows.append({"condition": condition, "workload": name, "work_macs": work, "auto_threads": chosen,
                     "load_1min": os.getloadavg()[0], "s_per_step": mean,
                     "auto_over_best": mean["auto"] / best})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--scale", type=float, default=1.0, help="multiplies the steps per timed block")
    ap.add_argument("--settle", type=float, default=60.0)
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    cores = machine_cores()
    rows = measure("no added load", a.reps, a.scale)
    procs = [mp.Process(target=_spin, daemon=True) for _ in range(cores)]
    for p in procs:
        p.start()
    try:
        t0 = time.time()
        while os.getloadavg()[0] < cores - 0.5 and time.time() - t0 < a.settle:
            time.sleep(2)
        rows += measure(f"{cores} busy processes", a.reps, a.scale)
    finally:
        for p in procs:
            p.terminate()
            p.join()
    print(f"cores {cores}, OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}")
    print(f"{'condition':<22}{'workload':<10}{'load':>6}{'auto n':>8}{'auto s':>9}{'1 thr s':>9}"
          f"{'2 thr s':>9}{'auto/best':>11}")
    for r in rows:
        s = r["s_per_step"]
        print(f"{r['condition']:<22}{r['workload']:<10}{r['load_1min']:>6.1f}{str(r['auto_threads']):>8}"
              f"{s['auto']:>9.3f}{s['1']:>9.3f}{s['2']:>9.3f}{r['auto_over_best']:>11.2f}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"cores": cores, "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"), "rows": rows}, f,
                      indent=1)


if __name__ == "__main__":
    main()
