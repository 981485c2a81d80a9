"""Search-strategy benchmark: HV share of the true (enumerated) front per problem x strategy x budget.

Problems (`benchmarks/search_problems.py`): `synthetic` (closed-form cross-layer objective, 82,944 genomes),
`interact` (8 coupled ordered genes, 390,625 genomes), `demo-cost` (the demo space, 3,780,432 genomes,
real cost model log10 EDP vs a smooth accuracy function). Strategies: random, evolution, nsga2 and
nsga2 with the surrogate (`--surrogate-model`, default gbm), all with the engine's defaults (population
from the budget rule) — nothing tuned per problem. Score: HV(evaluated set) / HV(true front), both
against ideal + 1.1 (nadir - ideal) of the true front; mean and std over seeds.

Engine overhead per candidate = (search wall time - time inside the full evaluations) / evaluations; for
the surrogate mode it includes model fitting, pool generation and the (cheap, table look-up) cost metrics.

Goals: nsga2 >= 0.95 at budget 400, surrogate >= 0.95 at 200, each >= 0.05 above random at that budget.

Usage: python benchmarks/search.py [--quick] [--json out.json] [--problems synthetic,interact,demo-cost]
       [--budgets 100,200,400] [--seeds 5] [--cache runs/bench-cache/demo_cost.npz]
The demo-cost enumeration (~2.5 CPU-minutes) is cached in --cache.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from crossnas.search import search
from search_problems import PROBLEMS, Problem

STRATEGIES = ("random", "evolution", "nsga2", "surrogate")


class _Timed:
    """Wraps a problem's evaluator and adds up the time spent in full evaluations."""

    def __init__(self, ev):
        self.ev, self.inside = ev, 0.0

    def __call__(self, archs):
        t0 = time.perf_counter()
        out = self.ev(archs)
        self.inside += time.perf_counter() - t0
        return out

    def cheap(self, archs):
        return self.ev.cheap(archs)


def run_one(p: Problem, strategy: str, budget: int, seed: int, model: str) -> dict:
    ev = _Timed(p.evaluate)
    kw = dict(p.evolution_kw) if strategy == "evolution" else {}
    if strategy == "surrogate":
        kw["surrogate"] = {"model": model}
    t0 = time.perf_counter()
    name = "nsga2" if strategy == "surrogate" else strategy
    res = search(p.space, ev, objectives=p.objectives, strategy=name, budget=budget, seed=seed,
                 progress=False, **kw)
    wall = time.perf_counter() - t0
    return {"hv_share": p.hv_share(res.history), "n": res.n_evaluations,
            "pop_size": res.meta["plan"]["pop_size"],
            "overhead_ms": 1e3 * (wall - ev.inside) / max(res.n_evaluations, 1)}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", default=None)
    ap.add_argument("--problems", default=",".join(PROBLEMS))
    ap.add_argument("--strategies", default=",".join(STRATEGIES))
    ap.add_argument("--budgets", default="100,200,400")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="2 seeds")
    ap.add_argument("--surrogate-model", default="gbm", choices=("gbm", "rf"))
    ap.add_argument("--cache", default="runs/bench-cache/demo_cost.npz")
    args = ap.parse_args(argv)
    seeds = 2 if args.quick else args.seeds
    budgets = [int(b) for b in args.budgets.split(",")]
    strategies = args.strategies.split(",")
    out: dict = {"seeds": seeds, "budgets": budgets, "surrogate_model": args.surrogate_model, "problems": {}}
    t_all = time.perf_counter()
    print(f"{'problem':<10} {'strategy':<10} " + " ".join(f"{'B=' + str(b):>15}" for b in budgets)
          + f" {'overhead/cand':>14}")
    for name in args.problems.split(","):
        t0 = time.perf_counter()
        p = PROBLEMS[name](args.cache) if name == "demo-cost" else PROBLEMS[name]()
        res = {"space_size": p.size, "front_size": len(p.front), "setup_s": time.perf_counter() - t0,
               "strategies": {}}
        for s in strategies:
            rows = {b: [run_one(p, s, b, seed, args.surrogate_model) for seed in range(seeds)]
                    for b in budgets}
            stats = {}
            for b, rs in rows.items():
                hv = [r["hv_share"] for r in rs]
                assert all(r["n"] == b for r in rs), f"{name}/{s}: budget not spent exactly"
                stats[b] = {"hv_mean": float(np.mean(hv)), "hv_std": float(np.std(hv)), "per_seed": hv,
                            "pop_size": rs[0]["pop_size"],
                            "overhead_ms": float(np.mean([r["overhead_ms"] for r in rs]))}
            res["strategies"][s] = stats
            over = np.mean([v["overhead_ms"] for v in stats.values()])
            print(f"{name:<10} {s:<10} " + " ".join(
                f"{stats[b]['hv_mean']:.3f}±{stats[b]['hv_std']:.3f}".rjust(15) for b in budgets)
                + f" {over:>11.2f} ms", flush=True)
        out["problems"][name] = res
    out["wall_s"] = time.perf_counter() - t_all
    print(_goals(out))
    print(f"total {out['wall_s']:.0f} s")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=1)


def _goals(out: dict) -> str:
    lines = []
    for name, res in out["problems"].items():
        st = res["strategies"]
        for s, b in (("nsga2", 400), ("surrogate", 200)):
            if s in st and b in st[s] and "random" in st:
                v, r = st[s][b]["hv_mean"], st["random"][b]["hv_mean"]
                ok = v >= 0.95 and v - r >= 0.05
                lines.append(f"goal {name}: {s}@{b} = {v:.3f} (>= 0.95: {v - 0.95:+.3f}), random {r:.3f} "
                             f"(margin {v - r:+.3f}, need +0.05) -> {'met' if ok else 'MISSED'}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
