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
    "select": {"rule": "top_k", "k": 2},
    "retrain": {"epochs": 1, "batch_size": 32, "seed": 0},
    "baselines": {"models": ["lenet"], "width_mult": {"lenet": 0.5}, "epochs": 1},
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
    assert kinds.count("baseline") == 1 and 1 <= kinds.count("design") <= 2
    assert final["chips"] == 2 and final["test_subset"]["n"] == 24 and final["split"] == "test"
    pareto_keys = {r["key"] for r in json.loads((out / "search/pareto.json").read_text())["pareto"]}
    for e in final["entries"]:
        assert len(e["test"]["per_chip"]) == 2
        assert 0.0 <= e["test"]["accuracy_pim"] <= 1.0
        assert e["test"]["accuracy_pim_total"] == 2 * 24 and e["test"]["accuracy_digital_total"] == 24
        assert abs(e["test"]["accuracy_pim_correct"] / 48 - e["test"]["accuracy_pim"]) < 1e-12
        assert e["cost"]["totals"]["edp_js"] > 0
        if e["kind"] == "design":
            assert e["source_key"] in pareto_keys
            assert e["retrain"]["epochs"] == 1
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
