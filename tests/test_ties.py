"""Fronts without ties: accuracies kept as image counts compare exactly, so an equal-accuracy point at a
higher cost leaves the front, adds no hypervolume and is not selected over the cheaper one."""

from __future__ import annotations

import numpy as np
import torch

from crossnas.pipeline.select import select_designs
from crossnas.search.accuracy import accuracy_metrics, exact_value
from crossnas.search.result import hypervolume, pareto_records

OBJ = {"accuracy_pim": "max", "edp_js": "min"}
N = 300  # validation images; three chips each
CHEAP, DEAR = (272, 272, 272), (270, 273, 273)  # 816 images right on both


def _mean(per_chip):  # how the simulator averages chips (float64 mean of per-chip fractions)
    return float(torch.tensor([c / N for c in per_chip], dtype=torch.float64).mean())


def _records(with_counts: bool):
    out = []
    for key, chips, edp in (("cheap", CHEAP, 1e-9), ("a-dear", DEAR, 3e-9), ("other", (250,) * 3, 0.5e-9)):
        m = (accuracy_metrics("accuracy_pim", [c / N for c in chips], N) if with_counts
             else {"accuracy_pim": _mean(chips)})
        out.append({"key": key, "metrics": {**m, "edp_js": edp}})
    return out


def test_mean_of_fractions_splits_an_equal_accuracy_by_one_rounding_step():
    assert sum(CHEAP) == sum(DEAR) and _mean(DEAR) > _mean(CHEAP)  # one ulp apart: the old front's tie
    old = pareto_records(_records(False), OBJ)
    assert {r["key"] for r in old} == {"cheap", "a-dear", "other"}  # the 3x-EDP point survived


def test_counts_drop_the_equal_accuracy_point_at_higher_cost():
    recs = _records(True)
    cheap, dear = recs[0]["metrics"], recs[1]["metrics"]
    assert cheap["accuracy_pim_correct"] == dear["accuracy_pim_correct"] == 816
    assert cheap["accuracy_pim_total"] == 900 and cheap["accuracy_pim"] == dear["accuracy_pim"] == 816 / 900
    assert [r["key"] for r in pareto_records(recs, OBJ)] == ["cheap", "other"]
    ideal, ref = [-1.0, 0.0], [0.0, 4e-9]
    assert hypervolume(recs, OBJ, ideal, ref) == hypervolume([recs[0], recs[2]], OBJ, ideal, ref)
    picked = select_designs(recs, recs, OBJ, rule="best_under", k=1, budget={"edp_js": 5e-9})
    assert exact_value(picked[0][0]["metrics"], "accuracy_pim") == 816 / 900
    assert picked[0][0]["key"] == "cheap"  # equal accuracies: the lower EDP wins, not a ulp or the key
    top = select_designs(recs, recs, OBJ, rule="top_k", k=2)
    assert [r["key"] for r, _ in top] == ["cheap", "a-dear"]


def test_evaluator_keeps_counts():
    from crossnas.hardware import load_hardware
    from crossnas.search.crosslayer import CrossLayerEvaluator
    from helpers import one_epoch_demo_supernet

    splits, space, sn = one_epoch_demo_supernet(limit=200)
    ev = CrossLayerEvaluator(space, sn, splits.train, splits.val, load_hardware("mnsim-default"),
                             (1, 8, 8), val_limit=15, bn_batches=1, calib_batches=1, chips=2)
    m = ev([space.decode(space.sample(np.random.default_rng(0), 1)[0])])[0]
    n = min(15, len(splits.val))
    assert m["accuracy_pim_total"] == 2 * n and m["accuracy_digital_total"] == n
    assert m["accuracy_pim"] == m["accuracy_pim_correct"] / (2 * n)
    assert m["accuracy_digital"] == m["accuracy_digital_correct"] / n
