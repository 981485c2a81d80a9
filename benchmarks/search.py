"""Search-strategy benchmark on a cheap synthetic cross-layer objective.

Space (9 genes, 27,648 genomes, all valid): per-layer weight bits b1..b4 in {2,4,6,8}, width multiplier
w in {0.5,0.75,1.0}, crossbar size x in {64,128,256,512}, ADC bits a in {4,6,8}, cells-per-weight
c in {1,2,4}, tile count t in {1,2,4}.
Metrics (deterministic, numpy-free closed forms):
  capacity  = w * sum_i log2(b_i) * (1 + 0.1 i)
  accuracy_pim = 0.95 (1 - exp(-capacity / 3)) - 0.03 * max(0, 7 - a) * 8 / x^0.5 - 0.01 / c
                 - 0.02 * sum_i |log2 b_i - log2 b_(i+1)|     (mixed-precision transitions cost accuracy)
  latency_s = 1e-4 * w * sum(b_i) * (1 + 256 / x) * 2^(a - 4) / (t * c^0.5)
  energy_j  = 1e-3 * w^2 * sum(b_i) * (x / 128)^0.3 * 1.3^(a - 4) * c^0.6 * t^0.2
  edp_js    = latency_s * energy_j
Objectives: accuracy_pim (max), log10(edp_js) (min; EDP spans decades, so raw-EDP hypervolume is
dominated by the high-EDP corner and every strategy scores ~0.99). The true Pareto front is
enumerated exhaustively; each strategy's score is HV(found) / HV(true front), both measured against
the same reference point (1.1 x the nadir span of the true front beyond its ideal point).

Also measures engine overhead (population 20, seed 0): an evaluate that sleeps 10 ms per candidate
(budget 200) and 100 ms per candidate (budget 60); overhead per generation =
(search wall time - time spent inside evaluate) / generations, reported as a share of evaluation time
(goals: < 5% at 10 ms, < 1% at 100 ms).

Usage: python benchmarks/search.py [--json out.json] [--budget 400] [--seeds 5]
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import time

import numpy as np

from crossnas.search import hypervolume, pareto_records, search
from crossnas.space.base import Gene, Space

OBJ = {"accuracy_pim": "max", "log10_edp": "min"}


class SyntheticSpace(Space):
    _genes = [*(Gene(f"bits_{i}", (2, 4, 6, 8)) for i in range(4)), Gene("width", (0.5, 0.75, 1.0)),
              Gene("xbar", (64, 128, 256, 512)), Gene("adc_bits", (4, 6, 8)), Gene("cells", (1, 2, 4)),
              Gene("tiles", (1, 2, 4))]

    @property
    def genes(self):
        return self._genes

    def is_valid(self, genome):
        return True

    def canonical(self, genome):
        return np.asarray(genome, dtype=np.int64).copy()


def metrics(a: dict) -> dict:
    bits = [a[f"bits_{i}"] for i in range(4)]
    w, x, adc, c, t = a["width"], a["xbar"], a["adc_bits"], a["cells"], a["tiles"]
    cap = w * sum(math.log2(b) * (1 + 0.1 * i) for i, b in enumerate(bits))
    jump = sum(abs(math.log2(bits[i]) - math.log2(bits[i + 1])) for i in range(3))
    acc = 0.95 * (1 - math.exp(-cap / 3)) - 0.03 * max(0, 7 - adc) * 8 / x ** 0.5 - 0.01 / c - 0.02 * jump
    lat = 1e-4 * w * sum(bits) * (1 + 256 / x) * 2 ** (adc - 4) / (t * c ** 0.5)
    en = 1e-3 * w ** 2 * sum(bits) * (x / 128) ** 0.3 * 1.3 ** (adc - 4) * c ** 0.6 * t ** 0.2
    return {"accuracy_pim": acc, "latency_s": lat, "energy_j": en, "edp_js": lat * en,
            "log10_edp": math.log10(lat * en)}


def evaluate(archs):
    return [metrics(a) for a in archs]


def true_front(space):
    recs = []
    for tup in itertools.product(*(range(g.size) for g in space.genes)):
        g = np.array(tup)
        recs.append({"key": space.key(g), "metrics": metrics(space.decode(g))})
    front = pareto_records(recs, OBJ)
    F = np.array([[-r["metrics"]["accuracy_pim"], r["metrics"]["log10_edp"]] for r in front])
    ideal, nadir = F.min(0), F.max(0)
    ref = ideal + 1.1 * (nadir - ideal)
    return front, ideal.tolist(), ref.tolist()


def strategy_kw(name):
    if name == "evolution":
        return {"parents": 10, "fitness": "paper-stage1", "fitness_bounds": "first-population"}
    return {}


def quality(budget, seeds, pop):
    space = SyntheticSpace()
    front, ideal, ref = true_front(space)
    hv_true = hypervolume(front, OBJ, ideal, ref)
    out = {"true_front_size": len(front), "space_size": 27648, "budget": budget, "pop_size": pop}
    for name in ("nsga2", "evolution", "random"):
        fr = []
        for s in range(seeds):
            res = search(space, evaluate, objectives=OBJ, strategy=name, budget=budget, seed=s, pop_size=pop,
                         progress=False, **strategy_kw(name))
            fr.append(hypervolume(res.history, OBJ, ideal, ref) / hv_true)
        out[name] = {"hv_fraction_mean": float(np.mean(fr)), "hv_fraction_std": float(np.std(fr)),
                     "per_seed": fr}
    return out


def overhead(budget=200, pop=20, sleep_s=0.01):
    space = SyntheticSpace()
    out = {}
    for name in ("nsga2", "evolution", "random"):
        inside = [0.0]

        def slow(archs, inside=inside):
            t0 = time.perf_counter()
            time.sleep(sleep_s * len(archs))
            res = evaluate(archs)
            inside[0] += time.perf_counter() - t0
            return res

        t0 = time.perf_counter()
        res = search(space, slow, objectives=OBJ, strategy=name, budget=budget, seed=0, pop_size=pop,
                     progress=False, **strategy_kw(name))
        wall = time.perf_counter() - t0
        over = wall - inside[0]
        out[name] = {"generations": res.generations, "overhead_s_per_gen": over / res.generations,
                     "eval_s_per_gen": inside[0] / res.generations, "overhead_share": over / inside[0]}
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", default=None)
    ap.add_argument("--budget", type=int, default=400)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--pop", type=int, default=40)
    args = ap.parse_args(argv)
    q = quality(args.budget, args.seeds, args.pop)
    o = overhead()
    print(f"true front: {q['true_front_size']} of {q['space_size']} genomes; budget {args.budget}, "
          f"pop {args.pop}, {args.seeds} seeds")
    o100 = overhead(budget=60, sleep_s=0.1)
    print(f"{'strategy':<10} {'HV/HV*':>14} {'overhead/gen':>14} {'share @10ms':>12} {'share @100ms':>13}")
    for name in ("nsga2", "evolution", "random"):
        r, v, w = q[name], o[name], o100[name]
        print(f"{name:<10} {r['hv_fraction_mean']:.4f}±{r['hv_fraction_std']:.4f} "
              f"{v['overhead_s_per_gen'] * 1e3:>11.2f} ms {100 * v['overhead_share']:>10.2f} % "
              f"{100 * w['overhead_share']:>11.2f} %")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"quality": q, "overhead": o, "overhead_100ms": o100}, fh, indent=1)


if __name__ == "__main__":
    main()
