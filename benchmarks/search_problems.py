"""Benchmark problems for `benchmarks/search.py`, each enumerated in full so its true Pareto front is known.

- `synthetic`: the closed-form cross-layer objective below (9 genes, 82,944 genomes).
- `interact`: 8 ordered genes of 5 levels (390,625 genomes) whose accuracy couples genes in chains and
  pairs, so no gene can be tuned alone.
- `demo-cost`: the project's own demo space (`crossnas.space` preset `demo`, every valid canonical genome)
  with the real cost model's log10 EDP (chip `mnsim-default`, the candidate's hardware genes applied as the
  cross-layer evaluator applies them) and accuracy replaced by the smooth function `demo_accuracy`.

Every evaluator declares its cost figures cheap (`evaluate.cheap`): the surrogate mode computes them
exactly and models only accuracy. Reference point: ideal + 1.1 (nadir - ideal) of the enumerated front.

synthetic, closed forms (per-layer weight bits b1..b4 in {2,4,6,8}, width multiplier w in {0.5,0.75,1},
crossbar x in {64..512}, ADC bits a in {4,6,8}, cells c in {1,2,4}, tiles t in {1,2,4}):
  capacity  = w * sum_i log2(b_i) * (1 + 0.1 i)
  accuracy_pim = 0.95 (1 - exp(-capacity / 3)) - 0.03 * max(0, 7 - a) * 8 / x^0.5 - 0.01 / c
                 - 0.02 * sum_i |log2 b_i - log2 b_(i+1)|
  latency_s = 1e-4 * w * sum(b_i) * (1 + 256 / x) * 2^(a - 4) / (t * c^0.5)
  energy_j  = 1e-3 * w^2 * sum(b_i) * (x / 128)^0.3 * 1.3^(a - 4) * c^0.6 * t^0.2
interact, with v_i in {0, 0.25, 0.5, 0.75, 1} (indices mod 8):
  accuracy_pim = mean_i v_i v_(i+1) - 0.3 |v_0 - v_4| |v_2 - v_6| - 0.2 (v_1 - v_5)^2 v_3
  (a gene pays off only with its neighbours raised too; the penalties tie genes four apart)
  cost = sum_i (1 + i / 4) v_i
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from crossnas.search import hypervolume
from crossnas.space.base import Gene, Space


@dataclass
class Problem:
    name: str
    space: Space
    evaluate: Any
    objectives: dict[str, str]
    size: int
    front: list[dict]
    ideal: list[float]
    ref: list[float]
    evolution_kw: dict = field(default_factory=dict)

    @property
    def hv_true(self) -> float:
        return hypervolume(self.front, self.objectives, self.ideal, self.ref)

    def hv_share(self, records: list[dict]) -> float:
        return hypervolume(records, self.objectives, self.ideal, self.ref) / self.hv_true


def front_2d(F: np.ndarray) -> np.ndarray:
    """Indices of the non-dominated rows of an (n, 2) minimisation matrix (first of identical rows)."""
    order = np.lexsort((F[:, 1], F[:, 0]))
    best, keep = np.inf, []
    for i in order:
        if F[i, 1] < best:
            best = F[i, 1]
            keep.append(i)
    return np.array(keep, dtype=np.int64)


def _finish(name, space, evaluate, objectives, F, genomes, size, evolution_kw) -> Problem:
    """Problem from the enumerated minimisation matrix F (rows = genomes)."""
    idx = front_2d(F)
    front = [{"key": space.key(genomes[i]), "metrics": dict(zip(objectives, _unsign(F[i], objectives)))}
             for i in idx]
    ideal, nadir = F[idx].min(0), F[idx].max(0)
    ref = ideal + 1.1 * (nadir - ideal)
    return Problem(name, space, evaluate, objectives, size, front, ideal.tolist(), ref.tolist(), evolution_kw)


def _unsign(row, objectives):
    return [-float(v) if s == "max" else float(v) for v, s in zip(row, objectives.values())]


class _Evaluator:
    """evaluate(archs) -> metrics; cheap(archs) -> the cost figures alone."""

    def __init__(self, fn, cheap_keys):
        self.fn, self.cheap_keys = fn, tuple(cheap_keys)

    def __call__(self, archs):
        return [self.fn(a) for a in archs]

    def cheap(self, archs):
        return [{k: m[k] for k in self.cheap_keys} for m in self(archs)]


class _Product(Space):
    """A plain product of genes, every genome valid and its own canonical form."""

    def __init__(self, genes):
        self._genes = genes

    @property
    def genes(self):
        return self._genes

    def is_valid(self, genome):
        return True

    def canonical(self, genome):
        return np.asarray(genome, dtype=np.int64).copy()


# --- synthetic ---------------------------------------------------------------------------------------
SYN_OBJ = {"accuracy_pim": "max", "log10_edp": "min"}


def synthetic_space() -> Space:
    return _Product([*(Gene(f"bits_{i}", (2, 4, 6, 8)) for i in range(4)), Gene("width", (0.5, 0.75, 1.0)),
                     Gene("xbar", (64, 128, 256, 512)), Gene("adc_bits", (4, 6, 8)),
                     Gene("cells", (1, 2, 4)), Gene("tiles", (1, 2, 4))])


def synthetic_metrics(a: dict) -> dict:
    bits = [a[f"bits_{i}"] for i in range(4)]
    w, x, adc, c, t = a["width"], a["xbar"], a["adc_bits"], a["cells"], a["tiles"]
    cap = w * sum(math.log2(b) * (1 + 0.1 * i) for i, b in enumerate(bits))
    jump = sum(abs(math.log2(bits[i]) - math.log2(bits[i + 1])) for i in range(3))
    acc = 0.95 * (1 - math.exp(-cap / 3)) - 0.03 * max(0, 7 - adc) * 8 / x ** 0.5 - 0.01 / c - 0.02 * jump
    lat = 1e-4 * w * sum(bits) * (1 + 256 / x) * 2 ** (adc - 4) / (t * c ** 0.5)
    en = 1e-3 * w ** 2 * sum(bits) * (x / 128) ** 0.3 * 1.3 ** (adc - 4) * c ** 0.6 * t ** 0.2
    return {"accuracy_pim": acc, "latency_s": lat, "energy_j": en, "edp_js": lat * en,
            "log10_edp": math.log10(lat * en)}


def _product_problem(name, space, fn, objectives, cheap_keys, evolution_kw) -> Problem:
    genomes = np.array(list(itertools.product(*(range(g.size) for g in space.genes))), dtype=np.int64)
    ev = _Evaluator(fn, cheap_keys)
    from crossnas.search.problem import objective_matrix

    F = objective_matrix(ev([space.decode(g) for g in genomes]), objectives)
    return _finish(name, space, ev, objectives, F, genomes, len(genomes), evolution_kw)


def synthetic() -> Problem:
    return _product_problem("synthetic", synthetic_space(), synthetic_metrics, SYN_OBJ,
                            ("latency_s", "energy_j", "edp_js", "log10_edp"),
                            {"parents": 10, "fitness": "paper-stage1", "fitness_bounds": "first-population"})


# --- interact ----------------------------------------------------------------------------------------
INT_OBJ = {"accuracy_pim": "max", "cost": "min"}
LEVELS = (0.0, 0.25, 0.5, 0.75, 1.0)


def interact_metrics(a: dict) -> dict:
    v = [a[f"g{i}"] for i in range(8)]
    chain = sum(v[i] * v[(i + 1) % 8] for i in range(8)) / 8
    acc = chain - 0.3 * abs(v[0] - v[4]) * abs(v[2] - v[6]) - 0.2 * (v[1] - v[5]) ** 2 * v[3]
    return {"accuracy_pim": acc, "cost": sum((1 + i / 4) * x for i, x in enumerate(v))}


def _interact_fitness(m: dict) -> float:  # scalar for `evolution`: accuracy less a cost share (max cost 15)
    return m["accuracy_pim"] - 0.5 * m["cost"] / 15


def interact() -> Problem:
    space = _Product([Gene(f"g{i}", LEVELS) for i in range(8)])
    return _product_problem("interact", space, interact_metrics, INT_OBJ, ("cost",),
                            {"parents": 10, "fitness": _interact_fitness})


# --- demo-cost ---------------------------------------------------------------------------------------
DEMO_OBJ = {"accuracy_pim": "max", "log10_edp": "min"}
BLOCK_GAIN = {"vgg_pool": 1.0, "vgg": 0.9, "residual": 1.1}


def demo_accuracy(d: dict) -> float:
    """A smooth stand-in for the demo's PIM accuracy: capacity of the active slots (width, weight and
    activation bits, block kind), a preference for 1-2 max-pools, and analog error that grows with the
    crossbar size and multi-bit cells and shrinks with ADC resolution:
      f(b) = 1 - 2^-(b - 2);  cap = sum_active log2(width)/4 * f(wbits) f(abits) gain(block)
      acc = 0.98 (1 - exp(-cap / 0.9)) (1 - 0.15 (1 - pools/2)^2)
            - 0.04 sqrt(rows / 64) 2^-((adc - 4) / 2) - 0.01 (cell_bits - 1)"""
    cap, pools = 0.0, 0
    for i in range(3):
        kind = d[f"slot{i}.block"]
        if kind == "skip":
            continue
        pools += kind == "vgg_pool"
        f = [1 - 2.0 ** -(d[f"slot{i}.{b}"] - 2) for b in ("wbits", "abits")]
        cap += math.log2(d[f"slot{i}.width"]) / 4 * f[0] * f[1] * BLOCK_GAIN[kind]
    acc = 0.98 * (1 - math.exp(-cap / 0.9)) * (1 - 0.15 * (1 - pools / 2) ** 2)
    return acc - 0.04 * math.sqrt(d["hw.crossbar"] / 64) * 2.0 ** (-(d["hw.adc_bits"] - 4) / 2) \
        - 0.01 * (d["hw.cell_bits"] - 1)


class DemoEvaluator:
    """Looks a candidate up in the enumerated table: accuracy from `demo_accuracy`, log10 EDP from the
    cost model (computed once for every genome)."""

    def __init__(self, space, ids: np.ndarray, log10_edp: np.ndarray):
        self.space, self.ids, self.log10_edp = space, ids, log10_edp
        self.radix = _radix(space)

    def _edp(self, d: dict) -> float:
        g = self.space.canonical(self.space.encode(d))
        i = int(np.searchsorted(self.ids, int(g @ self.radix)))
        return float(self.log10_edp[i])

    def cheap(self, archs):
        return [{"log10_edp": self._edp(d)} for d in archs]

    def __call__(self, archs):
        return [{"accuracy_pim": demo_accuracy(d), "log10_edp": self._edp(d)} for d in archs]


def _radix(space) -> np.ndarray:
    sizes = space.sizes
    return np.concatenate([np.cumprod(sizes[::-1])[::-1][1:], [1]]).astype(np.int64)


def _demo_genomes(space) -> np.ndarray:
    """Every valid canonical genome of the demo space, by canonicalising every network genome and
    pairing it with every hardware setting (validity couples the two only through hw.cell_bits)."""
    hw = [i for i, lab in enumerate(space.labels) if lab.startswith("hw.")]
    net = [i for i in range(space.n_genes) if i not in hw]
    seen: dict[str, np.ndarray] = {}
    for t in itertools.product(*(range(space.sizes[i]) for i in net)):
        g = np.zeros(space.n_genes, dtype=np.int64)
        g[net] = t
        c = space.canonical(g)
        seen.setdefault(space.key(c), c)
    nets = np.stack(list(seen.values()))
    hws = np.array(list(itertools.product(*(range(space.sizes[i]) for i in hw))), dtype=np.int64)
    G = np.repeat(nets, len(hws), axis=0)
    G[:, hw] = np.tile(hws, (len(nets), 1))
    cell = space.labels.index("hw.cell_bits")
    ok = np.zeros((len(nets), space.sizes[cell]), dtype=bool)
    for j, g in enumerate(nets):
        for c in range(space.sizes[cell]):
            x = g.copy()
            x[cell] = c
            ok[j, c] = space.is_valid(x)
    valid = ok[np.repeat(np.arange(len(nets)), len(hws)), G[:, cell]]
    return G[valid].astype(np.int16)


def _demo_edp(space, G: np.ndarray, hardware) -> np.ndarray:
    """log10 EDP of every genome in G: one traced layer table per topology (blocks and widths), its bits
    set per slot, and the cost model's batch path over all bits x hardware settings of that topology."""
    import torch

    from crossnas.cost import HardwareArrays, LayerTable
    from crossnas.cost.model import compute
    from crossnas.network import extract_layers
    from crossnas.supernet import Supernet

    torch.manual_seed(0)
    sn = Supernet.from_space(space, 1, 10, space.input_size)
    shape = (1, space.input_size, space.input_size)
    lab = space.labels
    slot_cols = [(lab.index(f"slot{i}.wbits"), lab.index(f"slot{i}.abits")) for i in range(space.n_slots)]
    topo_cols = [lab.index(f"slot{i}.{f}") for i in range(space.n_slots) for f in ("block", "width")]
    hw_cols = [i for i, x in enumerate(lab) if x.startswith("hw.")]
    hw_keys, hw_inv = np.unique(G[:, hw_cols], axis=0, return_inverse=True)
    hw_cfgs = []
    for row in hw_keys:
        g = G[0].copy()
        g[hw_cols] = row
        hw_cfgs.append(hardware.with_overrides(space.hardware_overlay(g)))
    hwa = HardwareArrays.from_configs(hw_cfgs)
    out = np.empty(len(G))
    topo_keys, topo_inv = np.unique(G[:, topo_cols], axis=0, return_inverse=True)
    wch, ach = np.array(space.wbits), np.array(space.abits)
    for t in range(len(topo_keys)):
        rows = np.flatnonzero(topo_inv.ravel() == t)
        net = sn.extract(space.network_arch(G[rows[0]])).eval()
        base = LayerTable.from_layers(extract_layers(net, shape))
        slot = np.array([int(n.split(".")[1]) if n.startswith("blocks.") else -1 for n in base.names])
        bits_keys, bits_inv = np.unique(G[rows][:, [c for p in slot_cols for c in p]], axis=0,
                                        return_inverse=True)
        tables = []
        for bk in bits_keys:
            wb, ab = base.weight_bits.copy(), base.act_bits.copy()
            for i in range(space.n_slots):
                m = slot == i
                wb[m & (wb > 0)] = wch[bk[2 * i]]
                ab[m & (ab > 0)] = ach[bk[2 * i + 1]]
            tables.append(dataclasses.replace(base, weight_bits=wb, act_bits=ab))
        for lo in range(0, len(rows), 20_000):
            r = rows[lo:lo + 20_000]
            hidx = hw_inv.ravel()[r]
            batch = HardwareArrays({k: v[hidx] for k, v in hwa.data.items()}, [hw_cfgs[i] for i in hidx])
            tot = compute([tables[i] for i in bits_inv.ravel()[lo:lo + 20_000]], batch)["totals"]
            out[r] = np.log10(tot["edp_js"])
    return out


def demo_cost(cache: str | Path | None = None, check: int = 40) -> Problem:
    """The demo-cost problem; the enumerated log10 EDP is cached in `cache` (.npz) when given.
    `check` random genomes are re-costed through `CrossLayerEvaluator`'s own path as a guard."""
    import torch

    from crossnas.cost import evaluate_cost
    from crossnas.hardware import load_hardware
    from crossnas.network import extract_layers
    from crossnas.space import get_space_preset
    from crossnas.supernet import Supernet

    space = get_space_preset("demo")
    hardware = load_hardware("mnsim-default")
    radix = _radix(space)
    path = Path(cache) if cache else None
    if path is not None and path.exists():
        z = np.load(path)
        ids, edp = z["ids"], z["log10_edp"]
        G = np.stack([(ids // r) % s for r, s in zip(radix, space.sizes)], axis=1).astype(np.int16)
    else:
        G = _demo_genomes(space)
        ids = G.astype(np.int64) @ radix
        order = np.argsort(ids)
        G, ids = G[order], ids[order]
        edp = _demo_edp(space, G, hardware)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            np.savez_compressed(path, ids=ids, log10_edp=edp)
    rng = np.random.default_rng(0)
    torch.manual_seed(0)
    sn = Supernet.from_space(space, 1, 10, space.input_size)
    shape = (1, space.input_size, space.input_size)
    for i in rng.integers(0, len(G), check):
        arch = space.to_arch(G[i])
        tot = evaluate_cost(extract_layers(sn.extract(arch.network).eval(), shape),
                            hardware.with_overrides(arch.hardware)).totals
        if not math.isclose(math.log10(tot["edp_js"]), edp[i], rel_tol=1e-9, abs_tol=1e-12):
            raise RuntimeError(f"enumerated EDP of genome {G[i].tolist()} disagrees with evaluate_cost")
    acc = _demo_accuracy_all(space, G)
    F = np.stack([-acc, edp], axis=1)
    ev = DemoEvaluator(space, ids, edp)
    return _finish("demo-cost", space, ev, DEMO_OBJ, F, G, len(G),
                   {"parents": 10, "fitness": lambda m: m["accuracy_pim"] - 0.1 * m["log10_edp"]})


def _demo_accuracy_all(space, G: np.ndarray) -> np.ndarray:
    """`demo_accuracy` for every row of G, vectorised (checked against the scalar form)."""
    lab = space.labels

    def col(name):  # the numeric choice of gene `name` per row
        return np.array(space.genes[lab.index(name)].choices, dtype=float)[G[:, lab.index(name)]]

    blocks = space.genes[lab.index("slot0.block")].choices
    gain_of = np.array([BLOCK_GAIN.get(k, 0.0) for k in blocks])
    cap = np.zeros(len(G))
    pools = np.zeros(len(G))
    for i in range(space.n_slots):
        b = G[:, lab.index(f"slot{i}.block")]
        pools += b == blocks.index("vgg_pool")
        fw = 1 - 2.0 ** -(col(f"slot{i}.wbits") - 2)
        fa = 1 - 2.0 ** -(col(f"slot{i}.abits") - 2)
        cap += np.log2(col(f"slot{i}.width")) / 4 * fw * fa * gain_of[b]
    acc = 0.98 * (1 - np.exp(-cap / 0.9)) * (1 - 0.15 * (1 - pools / 2) ** 2)
    acc -= 0.04 * np.sqrt(col("hw.crossbar") / 64) * 2.0 ** (-(col("hw.adc_bits") - 4) / 2)
    acc -= 0.01 * (col("hw.cell_bits") - 1)
    for i in np.random.default_rng(1).integers(0, len(G), 50):
        if not math.isclose(acc[i], demo_accuracy(space.decode(G[i])), rel_tol=1e-12, abs_tol=1e-12):
            raise RuntimeError("vectorised demo accuracy disagrees with demo_accuracy")
    return acc


PROBLEMS = {"synthetic": synthetic, "interact": interact, "demo-cost": demo_cost}
