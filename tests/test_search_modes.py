"""Search modes on the digits demo space: typed config, sub-spaces, two-stage, exact re-evaluation, CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from crossnas.errors import CrossnasError
from crossnas.hardware import load_hardware
from crossnas.search import LocalBackend, SubSpace, gene_groups
from crossnas.search.config import SearchConfig, load_search_config
from crossnas.search.crosslayer import make_evaluator, pick_winner, run_cross_layer_search, stage1_genome
from crossnas.search.problem import objective_matrix
from crossnas.search.result import nondominated
from helpers import one_epoch_demo_supernet

torch.set_num_threads(1)
TINY = {"budget": 8, "pop_size": 4, "seed": 0, "val_limit": 48, "bn_batches": 1, "calib_batches": 1,
        "batch_size": 48, "final_chips": 2}


class CountingBackend(LocalBackend):
    """Counts the candidates it is asked to score (search and re-evaluation alike)."""

    def __init__(self):
        self.n = 0

    def map(self, evaluate, archs):
        self.n += len(archs)
        return super().map(evaluate, archs)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """Digits demo space and a supernet trained for one epoch (untrained, every candidate scores alike)."""
    splits, space, sn = one_epoch_demo_supernet(300)
    return space, sn, splits, load_hardware("mnsim-default")


# --- config --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("bad, field", [
    ({"budget": 0}, "config.search.budget"),
    ({"strategy": "annealing"}, "config.search.strategy"),
    ({"objectives": {"accuracy": "max"}}, "config.search.objectives"),
    ({"objectives": {"edp_js": "smallest"}}, "config.search.objectives.edp_js"),
    ({"constraints": {"area_mm2": ["<", 5]}}, "config.search.constraints.area_mm2"),
    ({"constraints": {"power_w": ["<=", 5]}}, "config.search.constraints"),
    ({"fitness": "paper-stage3"}, "config.search.fitness"),
    ({"ref_point": {"edp_js": 1.0}}, "config.search.ref_point"),
    ({"mode": "two-stage", "budget": 1}, "config.search.mode"),
    ({"stage1_fraction": 1.0}, "config.search.stage1_fraction"),
    ({"backend": "dask"}, "config.search.backend"),
    ({"population": 10}, "config.search.population"),
])
def test_search_config_names_the_bad_field(bad, field):
    with pytest.raises(CrossnasError, match=rf"^{field}[:.]"):
        load_search_config(bad)


def test_search_config_defaults_and_search_keywords():
    cfg = load_search_config({"constraints": {"area_mm2": ["<=", 2.5]}, "ref_point": {"accuracy_pim": 0,
                                                                                       "edp_js": 1e-9}})
    assert (cfg.strategy, cfg.mode, cfg.fidelity, cfg.final_fidelity) == ("nsga2", "joint", "fast", "exact")
    kw = cfg.search_kwargs()
    assert kw["constraints"] == {"area_mm2": ("<=", 2.5)}
    assert kw["objectives"] == {"accuracy_pim": "max", "edp_js": "min"}


# --- sub-space -----------------------------------------------------------------------------------------
def test_subspace_keeps_fixed_genes_and_parent_rules(setup):
    space = setup[0]
    groups = gene_groups(space)
    assert groups["circuit"] and groups["bits"] and groups["network"]
    rng = np.random.default_rng(0)
    fixed = space.sample(rng, 1)[0]
    sub = SubSpace(space, groups["bits"] + groups["circuit"], fixed)
    assert sub.labels == [space.labels[i] for i in sorted(groups["bits"] + groups["circuit"])]
    net = groups["network"]
    for g in sub.sample(rng, 30):
        full = sub.full(g)
        assert space.is_valid(full) and sub.is_valid(g)
        assert np.array_equal(full[net], fixed[net])
        assert np.array_equal(sub.canonical(g), g)  # samples are canonical
        dec = sub.decode(g)
        assert set(dec) == set(space.labels) and np.array_equal(space.encode(dec), space.canonical(full))
        assert np.array_equal(sub.encode(dec), g)
    # same sub key <=> same parent canonical genome
    gs = sub.sample(rng, 40)
    for a in gs[:10]:
        for b in gs:
            assert (sub.key(a) == sub.key(b)) == (space.key(sub.full(a)) == space.key(sub.full(b)))


def test_subspace_rejects_bad_arguments(setup):
    space = setup[0]
    with pytest.raises(KeyError):
        SubSpace(space, ["slot9.block"], np.zeros(space.n_genes, dtype=np.int64))
    with pytest.raises(ValueError):
        SubSpace(space, [0], np.zeros(3, dtype=np.int64))


def test_stage1_genome_takes_hardware_values_and_top_bits(setup):
    space, _, _, hw = setup
    g = stage1_genome(space, hw)
    dec = space.decode(g)
    assert dec["hw.dac_bits"] == hw.dac.bits and dec["hw.adc_bits"] == hw.adc.bits
    assert dec["hw.cell_bits"] == hw.device.bits_per_cell
    assert dec["hw.crossbar"] == space.genes[space.labels.index("hw.crossbar")].choices[0]  # 256 not offered
    assert all(dec[f"slot{i}.wbits"] == max(space.wbits) for i in range(space.n_slots))


def test_cheap_metrics_are_the_evaluators_cost_figures(setup):
    space, sn, splits, hw = setup
    ev = make_evaluator(space, sn, splits, hw, load_search_config(TINY))
    archs = [space.decode(g) for g in space.sample(np.random.default_rng(3), 2)]
    for full, cheap in zip(ev(archs), ev.cheap(archs)):
        assert cheap and "accuracy_pim" not in cheap
        assert cheap == {k: full[k] for k in cheap}


def test_surrogate_search_through_the_pipeline_models_accuracy_only(setup, tmp_path):
    space, sn, splits, hw = setup
    cfg = load_search_config({**TINY, "final_fidelity": "fast", "final_chips": 1,
                              "surrogate": {"model": "rf", "pool": 12}})
    counter = CountingBackend()
    res = run_cross_layer_search(space, sn, splits, hw, cfg, tmp_path, progress=False, backend=counter)
    assert res.n_evaluations == 8 == counter.n - res.meta["final"]["reevaluated"]
    assert res.meta["surrogate"] == {"model": "rf", "pool": 12, "explore": 0.1}
    assert json.loads((tmp_path / "pareto.json").read_text())["meta"]["plan"]["pop_size"] == 4


# --- two-stage -----------------------------------------------------------------------------------------
def test_two_stage_fixes_hardware_then_network(setup, tmp_path):
    space, sn, splits, hw = setup
    cfg = load_search_config({**TINY, "mode": "two-stage", "final_fidelity": "fast", "final_chips": 1})
    res = run_cross_layer_search(space, sn, splits, hw, cfg, tmp_path, progress=False)
    groups = gene_groups(space)
    s1 = [r for r in res.history if r["stage"] == 1]
    s2 = [r for r in res.history if r["stage"] == 2]
    assert len(s1) == 4 and len(s2) == 4 and res.n_evaluations == 8
    fixed = stage1_genome(space, hw)
    for r in s1:
        g = np.array(r["genome"])
        active = {i for i in range(space.n_slots) if r["arch"][f"slot{i}.block"] != "skip"}
        for i in groups["circuit"]:
            assert g[i] == fixed[i]
        for i in groups["bits"]:
            if int(space.labels[i].split(".")[0][4:]) in active:  # skip slots' bits are canonical 0
                assert g[i] == fixed[i]
        assert r["key"] == space.key(g)
    assert len({tuple(np.array(r["genome"])[groups["network"]]) for r in s1}) > 1  # networks searched
    bounds = res.meta["fitness_bounds"]  # unset in the config: the space's own range, recorded
    assert bounds["source"].startswith("space") and bounds["clipped_share"] == 0.0
    winner = pick_winner(s1, cfg, bounds)
    assert res.meta["stage1"]["winner"] == winner["key"]
    assert res.meta["stage1"]["plan"]["pop_size"] == 4 == res.meta["plan"]["pop_size"]
    net = groups["network"]
    for r in s2 + res.pareto:
        assert np.array_equal(np.array(r["genome"])[net], np.array(winner["genome"])[net])
    assert len({tuple(np.array(r["genome"])[groups["bits"] + groups["circuit"]]) for r in s2}) > 1
    assert (tmp_path / "stage1" / "search_checkpoint.json").exists()
    assert (tmp_path / "stage2" / "search_checkpoint.json").exists()
    # resumed after both stages: nothing is evaluated again, same front
    counter = CountingBackend()
    again = run_cross_layer_search(space, sn, splits, hw, cfg, tmp_path, progress=False, resume=True,
                                   backend=counter)
    assert counter.n == 0
    assert [r["key"] for r in again.pareto] == [r["key"] for r in res.pareto]


# --- exact re-evaluation of the front ------------------------------------------------------------------
def test_front_is_reevaluated_at_final_fidelity_once(setup, tmp_path):
    space, sn, splits, hw = setup
    cfg = load_search_config({**TINY, "fidelity": "fast", "final_fidelity": "exact"})
    counter = CountingBackend()
    res = run_cross_layer_search(space, sn, splits, hw, cfg, tmp_path, progress=False, backend=counter)
    final = res.meta["final"]
    assert final["fidelity"] == "exact" and final["chips"] == 2
    assert counter.n == res.n_evaluations + final["reevaluated"]
    by_key = {r["key"]: r for r in res.history}
    exact = make_evaluator(space, sn, splits, hw, cfg, fidelity="exact", chips=2)
    fast_front = [r["key"] for r in res.pareto]
    assert fast_front
    rescored = exact([by_key[k]["arch"] for k in fast_front])
    for r, m in zip(res.pareto, rescored):
        assert r["search_metrics"] == by_key[r["key"]]["metrics"]  # in-loop metrics kept
        assert r["metrics"] == m  # reported metrics are the final-fidelity ones
    cached = json.loads((tmp_path / "front_exact.json").read_text())["metrics"]
    assert len(cached) == final["reevaluated"]
    # the returned front is exactly the non-dominated part of the re-evaluated search front
    rescored_all = [cached[k] for k in cached]
    F = objective_matrix(rescored_all, res.objectives)
    assert sorted(np.array(list(cached))[nondominated(F)]) == sorted(r["key"] for r in res.pareto)
    assert sorted(final["dropped"]) == sorted(set(cached) - {r["key"] for r in res.pareto})
    # resume after the search: neither the search nor the re-evaluation runs again
    counter2 = CountingBackend()
    again = run_cross_layer_search(space, sn, splits, hw, cfg, tmp_path, progress=False, resume=True,
                                   backend=counter2)
    assert counter2.n == 0
    assert again.pareto == res.pareto
    with pytest.raises(CrossnasError, match="--resume"):
        run_cross_layer_search(space, sn, splits, hw, cfg, tmp_path, progress=False)


def test_changed_final_fidelity_is_not_served_from_the_cache(setup, tmp_path):
    space, sn, splits, hw = setup
    cfg = SearchConfig(**{**TINY, "budget": 4, "final_fidelity": "fast", "final_chips": 1})
    run_cross_layer_search(space, sn, splits, hw, cfg, tmp_path, progress=False)
    counter = CountingBackend()
    exact = SearchConfig(**{**TINY, "budget": 4, "final_fidelity": "exact", "final_chips": 1})
    res = run_cross_layer_search(space, sn, splits, hw, exact, tmp_path, progress=False, resume=True,
                                 backend=counter)
    assert counter.n == res.meta["final"]["reevaluated"] > 0
    assert res.meta["final"]["fidelity"] == "exact"


def test_resume_of_a_cut_search_matches_an_uninterrupted_one(setup, tmp_path):
    space, sn, splits, hw = setup
    kw = {**TINY, "final_fidelity": "fast", "final_chips": 1}
    run_cross_layer_search(space, sn, splits, hw, SearchConfig(**{**kw, "budget": 4}), tmp_path / "cut",
                           progress=False)  # stands for a run stopped after its first generation
    resumed = run_cross_layer_search(space, sn, splits, hw, SearchConfig(**kw), tmp_path / "cut",
                                     progress=False, resume=True)
    whole = run_cross_layer_search(space, sn, splits, hw, SearchConfig(**kw), tmp_path / "whole",
                                   progress=False)
    def same(a, b):  # wall times differ, nothing else may
        return [(r["key"], r["metrics"]) for r in a] == [(r["key"], r["metrics"]) for r in b]

    assert same(resumed.history, whole.history) and same(resumed.pareto, whole.pareto)
    assert len({r["metrics"]["accuracy_pim"] for r in whole.history}) > 1


# --- CLI -----------------------------------------------------------------------------------------------
def _cli_config(tmp_path, setup) -> tuple:
    space, sn, _, _ = setup
    ck = tmp_path / "sn.pt"
    torch.save({"model": sn.state_dict()}, ck)
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        "data: {name: digits, seed: 0, limit: 300}\nspace: {preset: demo}\n"
        "hardware: {preset: mnsim-default}\n"
        "search: {budget: 6, pop_size: 3, val_limit: 32, bn_batches: 1, calib_batches: 1, batch_size: 32,"
        " final_chips: 1}\n")
    return cfg, ck


def test_cli_writes_front_history_and_plots(setup, tmp_path, capsys):
    from crossnas.cli import main

    cfg, ck = _cli_config(tmp_path, setup)
    out = tmp_path / "out"
    argv = ["search", str(cfg), "--supernet", str(ck), "--out", str(out), "--no-progress", "--device", "cpu"]
    assert main(argv + ["--backend", "local", "--workers", "1"]) == 0
    for name in ("pareto.json", "pareto.csv", "history.csv", "pareto.png", "hypervolume.png",
                 "front_exact.json", "evaluations.jsonl"):
        assert (out / name).stat().st_size > 0, name
    res = json.loads((out / "pareto.json").read_text())
    assert res["n_evaluations"] == 6 and res["meta"]["final"]["fidelity"] == "exact"
    assert len((out / "history.csv").read_text().splitlines()) == 7
    assert len((out / "pareto.csv").read_text().splitlines()) == len(res["pareto"]) + 1
    assert main(argv) == 2  # exists, no --resume
    assert "--resume" in capsys.readouterr().err
    assert main(argv + ["--resume", "--workers", "0"]) == 2
    assert "config.search.workers" in capsys.readouterr().err


class _Untouchable(torch.utils.data.Dataset):
    def __len__(self):
        raise AssertionError("the test split was read during search")

    def __getitem__(self, i):
        raise AssertionError("the test split was read during search")


def test_search_and_reevaluation_never_read_the_test_split(setup, tmp_path):
    import dataclasses

    space, sn, splits, hw = setup
    sealed = dataclasses.replace(splits, test=_Untouchable())
    cfg = SearchConfig(**{**TINY, "budget": 3, "pop_size": 3, "final_chips": 1})
    res = run_cross_layer_search(space, sn, sealed, hw, cfg, tmp_path, progress=False)
    ev = make_evaluator(space, sn, sealed, hw, cfg)
    assert ev.val_set is splits.val and ev.train_set is splits.train
    assert res.n_evaluations == 3 and res.pareto

