"""The cross-layer evaluator joins supernet, simulator and cost model into one search."""

import functools

import numpy as np
import torch

from crossnas.hardware import load_hardware
from crossnas.search import search
from crossnas.search.crosslayer import CrossLayerEvaluator
from helpers import one_epoch_demo_supernet

torch.set_num_threads(1)


@functools.cache
def _trained():
    return one_epoch_demo_supernet(400)


def _evaluator(**kw):
    splits, space, sn = _trained()
    shape = (splits.in_channels, splits.input_size, splits.input_size)
    kw = {"fidelity": "fast", "val_limit": 60, "bn_batches": 2, **kw}
    return space, CrossLayerEvaluator(space, sn, splits.train, splits.val, load_hardware("mnsim-default"),
                                      shape, **kw)


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


def _bn_stats(net):
    return [(m.running_mean.clone(), m.running_var.clone()) for m in net.modules()
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]


def test_candidates_do_not_depend_on_what_was_evaluated_before():
    small = {"bn_batches": 1, "calib_batches": 1, "batch_size": 16}  # other batches, other statistics
    space, ev = _evaluator(**small)
    a, b, c = (space.decode(g) for g in space.sample(np.random.default_rng(1), 3))
    first_stats, first = _bn_stats(ev.build(a)[0]), ev([a])[0]
    _, used = _evaluator(**small)
    used([b, c])
    again = _bn_stats(used.build(a)[0])
    assert all(torch.equal(x, y) for p, q in zip(first_stats, again) for x, y in zip(p, q))
    assert used([a])[0] == first
    _, other_seed = _evaluator(**small, seed=1)  # the statistics do depend on the batches
    assert not all(torch.equal(p[0], q[0]) for p, q in zip(first_stats, _bn_stats(other_seed.build(a)[0])))
