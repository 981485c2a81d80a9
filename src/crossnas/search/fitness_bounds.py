"""Fitness normalisation bounds from the space itself: its extremes through the cost model.

`space_bounds` takes a seeded sample of the space's networks, each also with every bits gene (weight,
activation, per-slot ADC) at its smallest and at its largest choice, and costs each on every combination of
the circuit (`hw.*`) genes on the run's hardware (networks built structure-only: the cost model sees shapes
and bits, not weights). The range is widened by MARGIN on each side, so the search's own candidates fall
inside it. The result is recorded in the run (`meta["fitness_bounds"]`).
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

MARGIN = 0.25  # bounds = [min / (1 + MARGIN), max * (1 + MARGIN)] of the costed sample


def space_bounds(space: Any, hardware: Any, input_shape: tuple[int, int, int], *, n: int = 16,
                 seed: int = 0, build: Callable | None = None) -> dict[str, Any]:
    """{latency_ms: [lo, hi], energy_mj: [lo, hi], source}; `build(NetworkArch) -> nn.Module` makes the
    network (default: `supernet.model.build_subnet` with the space's head, 10 classes)."""
    import torch

    from crossnas.cost import evaluate_batch
    from crossnas.supernet.model import build_subnet

    if build is None:
        hidden = tuple(getattr(getattr(space, "spec", None), "head_hidden", (200, 50)))

        def build(net_arch):
            return build_subnet(net_arch, input_shape[0], 10, input_shape[1], head_hidden=hidden)

    rng = np.random.default_rng(seed)
    labels = list(space.labels)
    bits = [i for i, x in enumerate(labels) if x.endswith((".wbits", ".abits", ".adc_bits"))]
    circuit = [i for i, x in enumerate(labels) if x.startswith("hw.")]
    sizes = np.asarray(space.sizes, dtype=np.int64)
    nets = []
    for g in space.sample(rng, n):
        for variant in (None, 0, -1):  # as drawn, all bits genes smallest, all largest
            v = np.array(g, copy=True)
            if variant is not None:
                v[bits] = 0 if variant == 0 else sizes[bits] - 1
            nets.append(v)
    combos = list(itertools.product(*(range(int(sizes[i])) for i in circuit))) or [()]
    genomes = []
    for v in nets:
        for combo in combos:
            g = np.array(v, copy=True)
            g[circuit] = np.asarray(combo, dtype=np.int64)
            g = space.canonical(g)
            if space.is_valid(g):
                genomes.append(g)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # many small forward passes: more threads only contend on a shared machine
    try:
        tables, hws = _tables(genomes, space, hardware, input_shape, build)
    finally:
        torch.set_num_threads(threads)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a fixed tile count a corner outgrows warns; costing still works
        cost = evaluate_batch(tables, hws)
    lat, en = cost["latency_s"] * 1e3, cost["energy_j"] * 1e3
    return {"latency_ms": [float(lat.min()) / (1 + MARGIN), float(lat.max()) * (1 + MARGIN)],
            "energy_mj": [float(en.min()) / (1 + MARGIN), float(en.max()) * (1 + MARGIN)],
            "source": f"space: {len(genomes)} genomes ({n} sampled networks, seed {seed}, with smallest and "
                      "largest bits, on every circuit-gene combination) through the cost model"}


def _tables(genomes, space, hardware, input_shape, build):
    """One LayerTable per distinct network (traced once) and one hardware config per genome."""
    from crossnas.cost import table_for

    tables, hws, by_net = [], [], {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer notes are the evaluator's to report, not the bounds'
        for g in genomes:
            arch = space.to_arch(g)
            key = repr(arch.network)
            if key not in by_net:
                by_net[key] = table_for(build(arch.network), input_shape)
            tables.append(by_net[key])
            hws.append(hardware.with_overrides(arch.hardware))
    return tables, hws
