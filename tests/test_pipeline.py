"""`crossnas run`: the whole pipeline on a tiny synthetic config, resumption, config errors, selection
and noise-aware retraining."""

from __future__ import annotations

import copy
import json

import pytest
import torch
from torch import nn

from crossnas.cli import main
from crossnas.errors import CrossnasError
from crossnas.pipeline import load_run_config, run_pipeline
from crossnas.pipeline.retrain import train_qat
from crossnas.pipeline.select import select_designs
from crossnas.pipeline.state import STAGES

TINY = {
    "name": "tiny",
    "device": "cpu",
    "data": {"name": "synthetic:1x8x8:4:240", "seed": 0},
    "space": {"preset": "demo"},
    "supernet": {"epochs": 2, "batch_size": 32, "lr": 0.05, "seed": 0, "val_subnets": 0},
    "hardware": {"preset": "mnsim-default", "set": {"device.variation": 0.05, "quant.weight_bits": 6,
                                                    "quant.act_bits": 6}},
    "search": {"strategy": "nsga2", "budget": 8, "pop_size": 4, "seed": 0, "val_limit": 32, "bn_batches": 2,
               "final_chips": 1},
    "select": {"rule": "top_k", "k": 2, "rerank": 3, "rerank_epochs": 1},
    "retrain": {"epochs": 1, "batch_size": 32, "seed": 0},
    "baselines": {"models": ["lenet"], "width_mult": {"lenet": 0.5}, "epochs": 1, "bits_epochs": 1},
    "final": {"test_limit": 24, "seed": 0, "chips": 2, "batch_size": 16},
}


def _entries(run_dir):
    final = json.loads((run_dir / "final.json").read_text())
    return [{k: e[k] for k in ("name", "source_key", "bits", "test", "description")} | {
        "totals": e["cost"]["totals"]} for e in final["entries"]]


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("run") / "tiny"
    res = run_pipeline(TINY, out, progress=False)
    return out, res


def test_full_pipeline_writes_every_artifact(full_run):
    out, res = full_run
    state = json.loads((out / "run.json").read_text())
    assert [state["stages"][s]["status"] for s in STAGES] == ["done"] * len(STAGES)
    assert all(state["stages"][s]["wall_s"] > 0 for s in STAGES)
    assert state["config"]["search"]["budget"] == 8 and state["seeds"]["final"] == 0
    assert {"torch", "python", "crossnas"} <= set(state["versions"])
    for rel in ("config.yaml", "supernet/checkpoint.pt", "supernet/metrics.jsonl", "search/pareto.json",
                "search/pareto.csv", "search/history.csv", "search/evaluations.jsonl", "search/pareto.png",
                "designs/design-1/design.json", "designs/design-1/hardware.yaml",
                "designs/design-1/weights.pt", "baselines/lenet/weights.pt", "final.json", "report.md",
                "report.html"):
        assert (out / rel).is_file(), rel
    final = json.loads((out / "final.json").read_text())
    kinds = [e["kind"] for e in final["entries"]]
    n_designs = kinds.count("design")
    assert 1 <= n_designs <= 2
    # lenet at the chip's default bits and at its best uniform bits, the latter also on each design's chip
    bits = json.loads((out / "baselines" / "bits.json").read_text())["lenet"]
    best = max((4, 6, 8), key=lambda b: (bits[f"w{b}a{b}@1"], -b))
    names = [e["name"] for e in final["entries"]]
    assert names[n_designs:] == ["lenet", f"lenet-w{best}a{best}"] + [
        f"lenet-w{best}a{best}@design-{i + 1}" for i in range(n_designs)]
    on_chip = {e["name"]: e for e in final["entries"]}
    for i in range(n_designs):
        d, b = on_chip[f"design-{i + 1}"], on_chip[f"lenet-w{best}a{best}@design-{i + 1}"]
        assert b["hardware"] == d["hardware"] and b["chip"] == f"design-{i + 1}"
    assert on_chip["lenet"]["chip"] == "default"
    # re-ranked: the designs carry the short standalone training's scores and the search's
    rr = json.loads((out / "select" / "rerank.json").read_text())["results"]
    history = json.loads((out / "search/pareto.json").read_text())["history"]
    assert len(rr) == 3 and all(len(r["val_curve"]) == 1 for r in rr.values())
    # top_k re-ranks the most accurate of every evaluated candidate, on the front or not
    acc = {r["key"]: r["metrics"]["accuracy_pim"] for r in history}
    assert set(rr) <= set(acc) and min(acc[k] for k in rr) >= max(v for k, v in acc.items() if k not in rr)
    # and the designs are the re-ranking's best, not the search's (its image counts do not linger)
    chosen = {e["source_key"] for e in final["entries"] if e["kind"] == "design"}
    assert min(rr[k]["accuracy_pim"] for k in chosen) >= max(
        rr[k]["accuracy_pim"] for k in rr if k not in chosen)
    assert final["chips"] == 2 and final["test_subset"]["n"] == 24 and final["split"] == "test"
    designs = [e for e in final["entries"] if e["kind"] == "design"]
    best = max(e["retrain"]["val_acc_after"] for e in designs)  # picked on validation, never on test
    assert final["picked"] == next(e["name"] for e in designs if e["retrain"]["val_acc_after"] == best)
    for e in final["entries"]:
        assert len(e["test"]["per_chip"]) == 2
        assert 0.0 <= e["test"]["accuracy_pim"] <= 1.0
        assert e["test"]["accuracy_pim_total"] == 2 * 24 and e["test"]["accuracy_digital_total"] == 24
        assert abs(e["test"]["accuracy_pim_correct"] / 48 - e["test"]["accuracy_pim"]) < 1e-12
        assert e["cost"]["totals"]["edp_js"] > 0
        if e["kind"] == "design":
            assert e["source_key"] in rr
            assert e["retrain"]["epochs"] == 1 and len(e["retrain"]["val_curve"]) == 1
            rec = next(r for r in history if r["key"] == e["source_key"])
            assert e["val"] == rec["metrics"]  # the search's scores; the re-ranking's beside them
            meta = json.loads((out / e["design_dir"] / "design.json").read_text())["metrics"]
            assert meta["rerank"]["accuracy_pim"] == rr[e["source_key"]]["accuracy_pim"]
    assert "val acc. per epoch" in (out / "report.md").read_text()
    html = (out / "report.html").read_text()
    assert "data:image/png;base64" in html and "design-1" in html and "lenet" in html
    assert res.report_html == out / "report.html"


def test_exported_design_rebuilds_and_scores_the_same(full_run):
    from crossnas.analog import evaluate_pim
    from crossnas.data import load_dataset
    from crossnas.design import load_design

    out, _ = full_run
    d = load_design(out / "designs" / "design-1")
    entries = json.loads((out / "final.json").read_text())["entries"]
    entry = next(e for e in entries if e["name"] == "design-1")
    assert [b["weight_bits"] for b in entry["bits"]] == [
        m.weight_bits for m in d.module.modules() if hasattr(m, "weight_bits")]
    splits = load_dataset(TINY["data"]["name"], seed=0)
    x = torch.stack([splits.test[i][0] for i in range(4)])
    assert d.module(x).shape == (4, 4)
    res = evaluate_pim(d.module, [(x, torch.zeros(4, dtype=torch.long))], d.hardware, calib_loader=[x],
                       chips=1, device="cpu")
    assert 0.0 <= res.accuracy_pim <= 1.0


def test_resume_after_supernet_gives_the_same_designs(full_run, tmp_path):
    out_full, _ = full_run
    out = tmp_path / "resumed"
    first = run_pipeline(TINY, out, progress=False, stop_after="supernet")
    assert first.final is None and first.stages["search"]["status"] == "pending"
    with pytest.raises(CrossnasError, match="--resume"):
        run_pipeline(TINY, out, progress=False)
    trained_more = copy.deepcopy(TINY)
    trained_more["supernet"]["epochs"] = 3
    with pytest.raises(CrossnasError, match="differs.*supernet"):
        run_pipeline(trained_more, out, progress=False, resume=True)
    # sections of stages that have not started may still change; the change is recorded
    more_chips = copy.deepcopy(TINY)
    more_chips["final"]["chips"] = 3
    run_pipeline(more_chips, out, progress=False, resume=True, stop_after="supernet")
    state = json.loads((out / "run.json").read_text())
    assert state["config"]["final"]["chips"] == 3 and state["config_changes"][0]["sections"] == ["final"]
    run_pipeline(TINY, out, progress=False, resume=True)
    assert _entries(out) == _entries(out_full)
    assert json.loads((out / "run.json").read_text())["stages"]["supernet"]["runs"] == 1


def test_resume_refuses_a_changed_config(full_run):
    out, _ = full_run
    changed = copy.deepcopy(TINY)
    changed["search"]["budget"] = 9
    with pytest.raises(CrossnasError, match="differs.*search"):
        run_pipeline(changed, out, progress=False, resume=True)


def test_analog_kernel_is_a_speed_choice_not_part_of_the_resume_check(full_run, tmp_path):
    import shutil

    from crossnas.analog import set_kernel

    out = tmp_path / "copy"  # resume a copy: the shared run's log stays as other tests read it
    shutil.copytree(full_run[0], out)
    faster = copy.deepcopy(TINY)
    faster["analog"] = {"kernel": "float32"}
    try:
        run_pipeline(faster, out, progress=False, resume=True)  # no "config differs" error
    finally:
        set_kernel("auto")
    assert "config_changes" not in json.loads((out / "run.json").read_text())
    bad = {**copy.deepcopy(TINY), "analog": {"kernel": "int4"}}
    with pytest.raises(CrossnasError, match=r"analog\.kernel"):
        run_pipeline(bad, out.parent / "bad-kernel", progress=False)


@pytest.mark.parametrize("patch, field", [
    ({"search": {"budget": 0}}, "search.budget"),
    ({"retrain": {"epochz": 1}}, "retrain.epochz"),
    ({"hardware": {"preset": "no-such-chip"}}, "hardware"),
    ({"data": {"name": "no-such-data"}}, "data.name"),
    ({"select": {"rule": "best"}}, "select.rule"),
    ({"final": {"chips": 0}}, "final.chips"),
])
def test_invalid_config_fails_before_any_work(tmp_path, patch, field):
    cfg = copy.deepcopy(TINY)
    for k, v in patch.items():
        cfg[k] = {**cfg[k], **v} if isinstance(cfg[k], dict) else v
    out = tmp_path / "bad"
    with pytest.raises(CrossnasError, match=field.replace(".", r"\.")):
        run_pipeline(cfg, out, progress=False)
    assert not out.exists()


def test_cli_bad_config_exits_2_naming_the_field(tmp_path, capsys):
    import yaml

    cfg = copy.deepcopy(TINY)
    cfg["supernet"]["epochs"] = -1
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert main(["run", str(path), "--out", str(tmp_path / "r"), "--no-progress"]) == 2
    assert "supernet.epochs" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_shipped_presets_validate():
    from crossnas.pipeline import list_run_presets, resolve_config_path

    names = list_run_presets()
    assert {"demo", "fashion-mnist", "cifar10", "cifar10-paper"} <= set(names)
    for n in names:
        load_run_config(resolve_config_path(n))


def _rec(key, acc, edp):
    return {"key": key, "metrics": {"accuracy_pim": acc, "edp_js": edp}}


def test_select_rules():
    front = [_rec("a", 0.9, 5.0), _rec("b", 0.8, 2.0), _rec("c", 0.5, 1.0)]
    obj = {"accuracy_pim": "max", "edp_js": "min"}
    assert [r["key"] for r, _ in select_designs(front, front, obj, rule="top_k", k=2)] == ["a", "b"]
    assert select_designs(front, front, obj, rule="knee", k=1)[0][0]["key"] == "b"
    got = select_designs(front, front, obj, rule="best_under", k=3, budget={"edp_js": 2.5})
    assert [r["key"] for r, _ in got] == ["b", "c"]
    with pytest.raises(CrossnasError, match="select.budget"):
        select_designs(front, front, obj, rule="best_under", k=1, budget={"edp_js": 0.5})


def _tiny_set(n=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 6, generator=g)
    return torch.utils.data.TensorDataset(x, (x[:, 0] > 0).long())


def test_noise_aware_training_restores_clean_weights_and_is_seeded():
    data = _tiny_set()

    def trained(sigma, lr, seed=0):
        torch.manual_seed(0)
        m = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 2))
        train_qat(m, data, data, epochs=2, lr=lr, batch_size=16, momentum=0.0, weight_decay=0.0,
                  noise_sigma=sigma, seed=seed)
        return torch.cat([p.detach().flatten() for p in m.parameters()])

    torch.manual_seed(0)
    init = torch.cat([p.detach().flatten() for p in nn.Sequential(nn.Linear(6, 8), nn.ReLU(),
                                                                  nn.Linear(8, 2)).parameters()])
    # a vanishing learning rate: any leftover noise would show in the weights
    assert torch.allclose(trained(0.5, 1e-12), init, atol=1e-9)
    assert torch.equal(trained(0.3, 0.1), trained(0.3, 0.1))
    assert not torch.equal(trained(0.3, 0.1), trained(0.0, 0.1))
    assert not torch.equal(trained(0.3, 0.1, seed=0), trained(0.3, 0.1, seed=1))


def test_selection_floor_stops_before_retraining_and_resume_takes_a_new_floor(full_run, tmp_path):
    src, _ = full_run
    out = tmp_path / "floor"
    _after_baselines(src, out)  # the same run, stopped after its baselines
    high = copy.deepcopy(TINY)
    high["select"]["min_accuracy"] = {"value": 0.5, "relative_to": "lenet"}  # 50 points above lenet
    lenet = json.loads((out / "baselines" / "lenet" / "design.json").read_text())
    with pytest.raises(CrossnasError, match=r"no design reaches the floor .*lenet.*best validation accuracy "
                                            r"found is [0-9.]+.*--resume"):
        run_pipeline(high, out, progress=False, resume=True)
    state = json.loads((out / "run.json").read_text())
    assert state["stages"]["retrain"]["runs"] == 0 and not (out / "designs").exists()
    assert state["select"]["met"] is False
    assert state["select"]["floor"] >= lenet["metrics"]["retrain"]["val_acc_after"] + 0.5 - 1e-9
    rr = (out / "select" / "rerank.json").read_text()
    low = copy.deepcopy(TINY)
    low["select"]["min_accuracy"] = {"value": 0.0}
    run_pipeline(low, out, progress=False, resume=True, stop_after="retrain")
    state = json.loads((out / "run.json").read_text())
    assert state["stages"]["retrain"]["status"] == "done" and state["select"]["met"] is True
    assert (out / "select" / "rerank.json").read_text() == rr  # the re-ranking was not run again
    assert state["config_changes"][-1]["sections"] == ["select"]


def test_final_keeps_per_image_counts_and_compares_the_picked_design(full_run):
    out, _ = full_run
    final = json.loads((out / "final.json").read_text())
    for e in final["entries"]:
        counts = e["test"]["correct_chips"]
        assert len(counts) == final["test_subset"]["n"] and all(0 <= c <= final["chips"] for c in counts)
        assert sum(counts) == e["test"]["accuracy_pim_correct"]
    picked = {e["name"]: e for e in final["entries"]}[final["picked"]]
    rows = final["comparisons"]
    expected = {e["name"] for e in final["entries"]
                if e["kind"] == "baseline" and e["chip"] in ("default", final["picked"])}
    assert {r["baseline"] for r in rows} == expected and any(r["same_chip"] for r in rows)
    for r in rows:
        base = {e["name"]: e for e in final["entries"]}[r["baseline"]]
        # the mean of per-image differences is the difference of the two accuracies
        assert r["accuracy_diff"]["diff"] == pytest.approx(
            picked["test"]["accuracy_pim"] - base["test"]["accuracy_pim"], abs=1e-12)
        assert r["accuracy_diff"]["low"] <= r["accuracy_diff"]["diff"] <= r["accuracy_diff"]["high"]
        assert r["ratio"]["edp_js"] == pytest.approx(
            picked["cost"]["totals"]["edp_js"] / base["cost"]["totals"]["edp_js"])
    report = (out / "report.md").read_text()
    assert "against the baselines (paired)" in report


def _after_baselines(src, out):
    """A copy of the finished tiny run, set back to just after its baselines stage."""
    import shutil

    shutil.copytree(src, out)
    state = json.loads((out / "run.json").read_text())
    for s in ("retrain", "final", "report"):
        state["stages"][s] = {"status": "pending", "wall_s": 0.0, "runs": 0}
    (out / "run.json").write_text(json.dumps(state))
    for d in ("designs", "final"):
        shutil.rmtree(out / d)
    (out / "final.json").unlink()


def _before_final(src, out):
    """A copy of the finished tiny run, set back to just before its final stage."""
    import shutil

    shutil.copytree(src, out)
    state = json.loads((out / "run.json").read_text())
    for s in ("final", "report"):
        state["stages"][s] = {"status": "pending", "wall_s": 0.0, "runs": 0}
    (out / "run.json").write_text(json.dumps(state))
    shutil.rmtree(out / "final")
    (out / "final.json").unlink()


def test_a_baseline_on_a_chip_identical_to_one_scored_is_copied(full_run, tmp_path):
    import shutil

    src, _ = full_run
    out = tmp_path / "same-chip"
    _before_final(src, out)
    shutil.rmtree(out / "designs" / "design-2")  # design-2 becomes design-1's twin: the same chip
    shutil.copytree(out / "designs" / "design-1", out / "designs" / "design-2")
    run_pipeline(TINY, out, progress=False, resume=True)
    final = {e["name"]: e for e in json.loads((out / "final.json").read_text())["entries"]}
    twins = [n for n in final if n.endswith("@design-2")]
    assert twins
    for n in twins:
        first = final[n.replace("@design-2", "@design-1")]
        assert final[n]["same_as"] == first["name"] and final[n]["wall_s"] == 0.0 and first["wall_s"] > 0
        assert final[n]["test"] == first["test"] and final[n]["chip"] == "design-2"
    # the designs themselves are scored each (they are not baselines on a chip), and agree
    assert final["design-2"]["wall_s"] > 0 and final["design-2"]["test"] == final["design-1"]["test"]


def test_baselines_on_the_picked_designs_chip_only(full_run, tmp_path):
    src, _ = full_run
    out = tmp_path / "picked"
    _before_final(src, out)
    cfg = copy.deepcopy(TINY)
    cfg["final"]["baselines_on"] = "picked"
    run_pipeline(cfg, out, progress=False, resume=True)
    final = json.loads((out / "final.json").read_text())
    on_chips = {e["chip"] for e in final["entries"] if e["kind"] == "baseline"}
    assert on_chips == {"default", final["picked"]}  # designs: 2, so another design's chip was left out
    assert len([e for e in final["entries"] if e["kind"] == "design"]) == 2
    assert {c["baseline"] for c in final["comparisons"]} == {
        e["name"] for e in final["entries"] if e["kind"] == "baseline"}


def test_a_budget_relative_to_a_baseline_is_its_cost_times_the_value(full_run, tmp_path):
    from crossnas.cost import evaluate_cost
    from crossnas.design import load_design
    from crossnas.network import extract_layers

    src, _ = full_run
    out = tmp_path / "budget"
    _after_baselines(src, out)
    variants = {}  # EDP of lenet's trained variants (default and best uniform bits) on the default chip
    for d in sorted((out / "baselines").glob("lenet*/design.json")):
        design = load_design(d.parent)
        variants[d.parent.name] = float(evaluate_cost(extract_layers(design.module, (1, 8, 8)),
                                                      design.hardware).totals["edp_js"])
    best = min(variants, key=variants.get)
    edp = variants[best]
    cfg = copy.deepcopy(TINY)
    cfg["select"] = {"rule": "best_under", "k": 1,
                     "budget": {"edp_js": {"value": 1e-6, "relative_to": "lenet"}}}
    with pytest.raises(CrossnasError, match=r"select.budget: no searched design meets .*edp_js"):
        run_pipeline(cfg, out, progress=False, resume=True, stop_after="retrain")
    cfg["select"]["budget"]["edp_js"]["value"] = 1e6
    run_pipeline(cfg, out, progress=False, resume=True, stop_after="retrain")
    state = json.loads((out / "run.json").read_text())
    assert state["select"]["budget"]["edp_js"] == pytest.approx(1e6 * float(edp), rel=1e-9)
    assert f"{best}'s" in state["select"]["budget_how"][0]
    meta = json.loads((out / "designs" / "design-1" / "design.json").read_text())
    assert f"edp_js <= {1e6 * edp:g}" in meta["metrics"]["selected_by"]


def test_retraining_stops_on_patience_and_keeps_the_best_epoch():
    data = _tiny_set()
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 2))
    info = train_qat(m, data, data, epochs=40, lr=1e-12, batch_size=16, patience=2)  # nothing improves
    assert info["epochs"] == 2 and len(info["val_curve"]) == 2 and info["best_epoch"] == 0
    assert info["max_epochs"] == 40
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 2))
    info = train_qat(m, data, data, epochs=12, lr=0.2, batch_size=16, patience=3)
    curve = info["val_curve"]
    assert max(curve) > info["val_acc_before"]
    assert info["best_epoch"] == 1 + curve.index(max(curve)) and info["val_acc_after"] == max(curve)
    assert len(curve) == 12 or len(curve) - info["best_epoch"] == 3


def test_run_log_has_stage_headers_and_unit_lines(full_run):
    """progress=False prints nothing, but run.log holds every stage's header and one line per unit."""
    out, _ = full_run
    lines = (out / "run.log").read_text().splitlines()
    heads = [ln.split(" == ")[1].split(":")[0] for ln in lines if " == " in ln]
    assert heads == list(STAGES)
    body = [ln.split(" ", 2)[2] for ln in lines]
    assert sum(b.startswith("supernet: epoch ") for b in body) == TINY["supernet"]["epochs"]
    assert any(b.startswith("search: generation 1,") for b in body)
    assert any(b.startswith("re-score front: ") for b in body)
    assert sum(b.startswith("retrain: design-") for b in body) >= 1
    assert sum(b.startswith("baselines: lenet epoch ") for b in body) == 1
    final = [b for b in body if b.startswith("final: ")]
    assert len(final) == len(json.loads((out / "final.json").read_text())["entries"])
    assert "chip mnsim-default+w6+a6+var0.05" in lines[0]  # the --set changes name the chip


def test_a_relative_budget_also_holds_against_the_baseline_on_each_candidates_own_chip(full_run, tmp_path):
    import numpy as np

    from crossnas.cost import evaluate_cost
    from crossnas.design import load_design
    from crossnas.hardware import load_hardware
    from crossnas.network import extract_layers
    from crossnas.space import get_space_preset

    src, _ = full_run
    out = tmp_path / "own-chip"
    _after_baselines(src, out)
    lenets = [load_design(d.parent) for d in sorted((out / "baselines").glob("lenet*/design.json"))]

    def lenet_edp(hw=None):  # the lowest among lenet's variants, each on its own chip or on `hw`
        costs = (evaluate_cost(extract_layers(b.module, (1, 8, 8)), hw or b.hardware) for b in lenets)
        return min(float(c.totals["edp_js"]) for c in costs)

    space = get_space_preset("demo", input_size=8)
    default = load_hardware(TINY["hardware"]["preset"], TINY["hardware"]["set"])
    history = {r["key"]: r for r in json.loads((out / "search" / "pareto.json").read_text())["history"]}
    ratio = {}  # the candidate's EDP over lenet's: (on the default chip, on the candidate's chip)
    for k, r in history.items():
        chip = default.with_overrides(space.to_arch(np.asarray(r["genome"])).hardware)
        ratio[k] = (r["metrics"]["edp_js"] / lenet_edp(), r["metrics"]["edp_js"] / lenet_edp(chip))
    # the smallest budget some candidate meets on both chips, raised until one meets it on the default chip
    # only (a chip that suits the small network makes lenet cheaper there)
    value = min(max(a, b) for a, b in ratio.values())
    if not any(a <= value < b for a, b in ratio.values()):
        value = min(b for a, b in ratio.values() if a < b)
    assert any(a <= value < b for a, b in ratio.values())
    cfg = copy.deepcopy(TINY)
    cfg["select"] = {"rule": "best_under", "k": 2, "rerank": 0,
                     "budget": {"edp_js": {"value": value * (1 + 1e-9), "relative_to": "lenet"}}}
    run_pipeline(cfg, out, progress=False, resume=True, stop_after="retrain")
    state = json.loads((out / "run.json").read_text())
    assert state["select"]["own_chip_excluded"] == sum(b > value * (1 + 1e-9) for _, b in ratio.values())
    for d in (out / "designs").glob("design-*"):
        a, b = ratio[json.loads((d / "design.json").read_text())["metrics"]["source_key"]]
        assert a <= value * (1 + 1e-9) and b <= value * (1 + 1e-9)
    # a budget no candidate meets on its own chip stops before retraining, naming the best ratio
    cfg["select"]["budget"]["edp_js"]["value"] = min(b for _, b in ratio.values()) * 0.5
    cfg["select"]["rerank"] = 1
    none_out = tmp_path / "own-chip-none"
    _after_baselines(src, none_out)
    with pytest.raises(CrossnasError, match=r"select.budget: no searched design meets edp_js <= .* on its "
                                            r"own chip .*ratio found: 2"):
        run_pipeline(cfg, none_out, progress=False, resume=True, stop_after="retrain")
