"""The cross-layer evaluator joins supernet, simulator and cost model into one search."""

import numpy as np
import torch

from crossnas.data import load_dataset
from crossnas.hardware import load_hardware
from crossnas.search import search
from crossnas.search.crosslayer import CrossLayerEvaluator
from crossnas.space import get_space_preset
from crossnas.supernet import Supernet

torch.set_num_threads(1)


def _evaluator():
    splits = load_dataset("digits", seed=0, limit=400)
    space = get_space_preset("demo", input_size=splits.input_size)
    torch.manual_seed(0)
    sn = Supernet.from_space(space, splits.in_channels, splits.num_classes, splits.input_size)
    shape = (splits.in_channels, splits.input_size, splits.input_size)
    return space, CrossLayerEvaluator(space, sn, splits.train, splits.val, load_hardware("mnsim-default"),
                                      shape, fidelity="fast", val_limit=60, bn_batches=2)


def test_metrics_follow_the_candidate_hardware():
    space, ev = _evaluator()
    arch = space.decode(space.sample(np.random.default_rng(0), 1)[0])
    small, big = dict(arch, **{"hw.crossbar": 32}), dict(arch, **{"hw.crossbar": 64})
    m_small, m_big = ev([small, big])
    for m in (m_small, m_big):
        assert 0.0 <= m["accuracy_pim"] <= 1.0
        assert m["edp_js"] > 0 and m["crossbars"] > 0
    assert m_small["crossbars"] >= m_big["crossbars"]  # smaller arrays: never fewer of them
    assert ev([small])[0] == m_small  # seeded: the same candidate scores the same


def test_joint_search_front_is_nondominated():
    space, ev = _evaluator()
    res = search(space, ev, objectives={"accuracy_pim": "max", "edp_js": "min"}, strategy="nsga2",
                 budget=12, pop_size=6, seed=0, progress=False)
    assert 1 <= len(res.pareto) <= 12
    pts = [(r["metrics"]["accuracy_pim"], r["metrics"]["edp_js"]) for r in res.pareto]
    for a in pts:
        assert not any(b[0] >= a[0] and b[1] <= a[1] and b != a for b in pts)
