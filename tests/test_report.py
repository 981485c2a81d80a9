"""Run report: markdown + self-contained HTML from a realistic synthetic run folder."""

from __future__ import annotations

import ast
import base64
import copy
import json
import math
import re
import shutil
from pathlib import Path

import pytest

from crossnas.pipeline.references import PUBLISHED
from crossnas.pipeline.report import write_report

STAGES = ("supernet", "search", "baselines", "retrain", "final", "report")


# ---------------------------------------------------------------- fixture builder
def toy_metrics(a: dict) -> dict:
    """Accuracy grows with capacity and bits, cost with capacity, in the units of the real evaluator."""
    cap = a["depth"] * a["width"]
    acc = (1 - math.exp(-cap / 40)) * (1 - 0.5 ** a["bits"]) * 0.95
    lat = 2e-5 * cap * a["bits"] / 4
    energy = 1e-7 * cap * a["bits"] / (1 + a["xbar"] / 256)
    return {"accuracy_pim": acc, "accuracy_pim_std": 0.01, "accuracy_digital": acc + 0.01, "latency_s": lat,
            "energy_j": energy, "area_mm2": cap * 0.5, "edp_js": lat * energy, "crossbars": cap // 4 + 1,
            "tops_per_w": 0.1}


@pytest.fixture(scope="module")
def parts():
    """Expensive pieces built once: a real SearchResult and real CostReports."""
    from crossnas.cost import evaluate_cost
    from crossnas.hardware.config import HardwareConfig
    from crossnas.models import get_model
    from crossnas.network import extract_layers
    from crossnas.search import search
    from crossnas.space.categorical import CategoricalSpace

    space = CategoricalSpace({"depth": [1, 2, 3, 4], "width": [8, 16, 32], "bits": [2, 4, 8],
                              "xbar": [64, 128, 256]})
    res = search(space, lambda archs: [toy_metrics(a) for a in archs], strategy="nsga2", budget=40,
                 pop_size=8, seed=0, progress=False)
    assert res.pareto and res.hypervolume
    shape = (1, 12, 12)
    hw_design = HardwareConfig().with_overrides({"crossbar.rows": 128, "crossbar.cols": 128, "adc.bits": 5})
    costs = {
        "design-1": evaluate_cost(extract_layers(get_model("lenet", 1, 10, 12), shape), hw_design).to_dict(),
        "design-2": evaluate_cost(extract_layers(get_model("lenet", 1, 10, 12, width_mult=0.5), shape),
                                  hw_design).to_dict(),
        "vgg8": evaluate_cost(extract_layers(get_model("vgg8", 1, 10, 12, width_mult=0.25), shape),
                              HardwareConfig()).to_dict(),
        "lenet": evaluate_cost(extract_layers(get_model("lenet", 1, 10, 12), shape),
                               HardwareConfig()).to_dict(),
    }
    return res.to_dict(), costs


def _entry(name, kind, cost, test, *, source=None, val=None, retrain=None):
    hw = {"crossbar": "128x128" if kind == "design" else "256x256", "bits_per_cell": 1,
          "adc_bits": 5 if kind == "design" else 6, "dac_bits": 1, "device": "rram", "variation": 0.05,
          "stuck_at": [0.001, 0.0005]}
    return {"name": name, "kind": kind, "source_key": source,
            "selected_by": "top-2 by accuracy_pim" if kind == "design" else "baseline",
            "description": ("vgg_pool-16 w8a4 | residual-8 w4a8 | skip | head w8" if kind == "design"
                            else f"{name} (width x0.25) w9a9"),
            "design_dir": f"designs/{name}" if kind == "design" else f"baselines/{name}",
            "bits": [{"layer": "0", "weight_bits": 8, "act_bits": 4},
                     {"layer": "3", "weight_bits": 8, "act_bits": 4},
                     {"layer": "7", "weight_bits": 4, "act_bits": 8}],
            "hardware": hw, "val": val, "retrain": retrain, "test": test, "cost": cost, "wall_s": 1.5}


def make_run(root: Path, parts, *, dataset="digits", baselines=True, hypervolume=True, retrain=True,
             supernet_log="trainer", name="toy-run") -> Path:
    """A run folder as `crossnas run` writes it, with real search and cost outputs."""
    search, costs = copy.deepcopy(parts)
    run_dir = root / name
    (run_dir / "search").mkdir(parents=True)
    # the exact re-evaluation of the front differs a little from the in-loop (fast) metrics
    for r in search["pareto"]:
        r["search_metrics"] = dict(r["metrics"])
        r["metrics"] = {**r["metrics"], "accuracy_pim": r["metrics"]["accuracy_pim"] - 0.003}
    if not hypervolume:
        search.pop("hypervolume")
    (run_dir / "search" / "pareto.json").write_text(json.dumps(search))
    front = sorted(search["pareto"], key=lambda r: -r["metrics"]["accuracy_pim"])
    entries = []
    for i, rec in enumerate(front[:2]):
        rt = {"epochs": 3, "noise_sigma": 0.05, "val_acc_before": 0.8123 - 0.1 * i,
              "val_acc_after": 0.8734 - 0.1 * i} if retrain else None
        entries.append(_entry(f"design-{i + 1}", "design", costs[f"design-{i + 1}"],
                              {"accuracy_digital": 0.9512 - 0.05 * i, "accuracy_pim": 0.9127 - 0.05 * i,
                               "accuracy_pim_std": 0.0043 + 0.001 * i,
                               "per_chip": [0.91, 0.915, 0.912, 0.913, 0.9135]},
                              source=rec["key"], val=rec["metrics"], retrain=rt))
    if baselines:
        for j, b in enumerate(("vgg8", "lenet")):
            rt = {"epochs": 5, "noise_sigma": 0.05, "val_acc_before": 0.1, "val_acc_after": 0.9} if retrain \
                else None
            test = {"accuracy_digital": 0.9688 - 0.01 * j, "accuracy_pim": 0.8875 - 0.02 * j,
                    "accuracy_pim_std": 0.0121, "per_chip": [0.88] * 5}
            entries.append(_entry(b, "baseline", costs[b], test, retrain=rt))
    final = {"split": "test", "test_subset": {"n": 300, "seed": 0, "of": 360}, "chips": 5,
             "fidelity": "exact", "dataset": dataset, "entries": entries}
    (run_dir / "final.json").write_text(json.dumps(final))
    config = {"data": {"name": dataset, "seed": 0}, "space": {"preset": "demo"},
              "supernet": {"epochs": 3},
              "hardware": {"preset": "mnsim-default", "set": {"device.variation": 0.05}},
              "search": {"strategy": "nsga2", "budget": 40, "pop_size": 8, "fidelity": "fast",
                         "objectives": {"accuracy_pim": "max", "edp_js": "min"}},
              "retrain": {"epochs": 3}, "baselines": {"models": ["vgg8", "lenet"] if baselines else []},
              "final": {"chips": 5, "test_limit": 300}, "report": {}}
    walls = {"supernet": 61.25, "search": 3725.0, "retrain": 12.5, "baselines": 30.0, "final": 8.0,
             "report": 0.0}
    run = {"name": name, "config": config,
           "versions": {"crossnas": "source", "python": "3.12", "torch": "2.x", "numpy": "2.x",
                        "platform": "linux"},
           "seeds": {"data": 0, "search": 0}, "device": "cpu",
           "stages": {s: {"status": "done", "wall_s": walls[s], "runs": 2 if s == "search" else 1}
                      for s in STAGES}}
    run["stages"]["report"]["status"] = "running"
    (run_dir / "run.json").write_text(json.dumps(run))
    if supernet_log:  # the trainer's own rows, or the minimal {epoch, loss, val: {...}} of the contract
        (run_dir / "supernet").mkdir()
        if supernet_log == "trainer":
            rows = [{"epoch": e + 1, "train_loss": 2.0 / (e + 1), "train_acc": 0.4 + 0.1 * e, "lr": 0.05,
                     "val": [{"arch": {}, "acc": 0.3 + 0.1 * e}, {"arch": {}, "acc": 0.5 + 0.1 * e}],
                     "val_acc_mean": 0.4 + 0.1 * e} for e in range(4)]
        else:
            rows = [{"epoch": e, "loss": 2.0 / (e + 1), "val": {"acc": 0.5 + 0.1 * e, "loss": 1.0}}
                    for e in range(4)]
        (run_dir / "supernet" / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return run_dir


# ---------------------------------------------------------------- helpers
def md_table(md: str, first_header: str, nth: int = 0) -> tuple[list[str], list[list[str]]]:
    """The `nth` markdown table whose first header is `first_header`: (headers, rows), escapes undone."""
    lines = md.splitlines()
    split = lambda ln: [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", ln.strip())[1:-1]]  # noqa: E731
    for i, ln in enumerate(lines):
        if ln.startswith("|") and not lines[i - 1].startswith("|") and split(ln)[0] == first_header:
            if nth:
                nth -= 1
                continue
            rows = []
            for row in lines[i + 2:]:
                if not row.startswith("|"):
                    break
                rows.append(split(row))
            return split(ln), rows
    raise AssertionError(f"no table starting with {first_header!r}")


def section(md: str, title_start: str) -> str:
    m = re.search(rf"^## {re.escape(title_start)}.*?(?=^## |\Z)", md, flags=re.M | re.S)
    assert m, f"no section {title_start!r}"
    return m.group(0)


# ---------------------------------------------------------------- tests
NAME = "toy <run> & co"


@pytest.fixture(scope="module")
def full(parts, tmp_path_factory):
    """One complete report (digits), shared by the read-only tests; the name needs HTML escaping."""
    run_dir = make_run(tmp_path_factory.mktemp("full"), parts, name="toy-run")
    run = json.loads((run_dir / "run.json").read_text())
    run["name"] = NAME
    (run_dir / "run.json").write_text(json.dumps(run))
    return run_dir, write_report(run_dir)


def test_full_report_files_and_self_contained_html(full):
    run_dir, out = full
    assert out["md"] == run_dir / "report.md" and out["html"] == run_dir / "report.html"
    names = sorted(p.name for p in out["plots"])
    assert names == ["components.png", "hypervolume.png", "layers.png", "pareto.png", "supernet.png"]
    for p in out["plots"]:
        assert p.parent == run_dir / "report" and p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = out["html"].read_text()
    srcs = re.findall(r'src="([^"]*)"', page)
    assert len(srcs) == len(out["plots"]) and all(s.startswith("data:image/png;base64,") for s in srcs)
    assert "<link" not in page and "href=" not in page
    # the embedded images are exactly the written PNGs, in order
    embedded = [base64.b64decode(s.split(",", 1)[1]) for s in srcs]
    assert set(embedded) == {p.read_bytes() for p in out["plots"]}
    md = out["md"].read_text()
    for p in out["plots"]:
        assert f"(report/{p.name})" in md
    # md and html carry the same section headings
    assert re.findall(r"^## (.*)$", md, flags=re.M) == [
        h.replace("&#x27;", "'") for h in re.findall(r"<h2>(.*?)</h2>", page)]
    assert "validation split" in md and "5 chip instances" in md
    assert "a fixed subset of 300 of the 360 images of the held-out test split (seed 0)" in md
    assert "exact simulator" in md and "mnsim-default" in md and "nsga2" in md


def test_table_lists_every_entry_with_final_numbers(full):
    run_dir, out = full
    final = json.loads((run_dir / "final.json").read_text())
    md = out["md"].read_text()
    headers, rows = md_table(md, "name")
    by_name = {r[0]: dict(zip(headers, r)) for r in rows}
    assert list(by_name) == [e["name"] for e in final["entries"]] == ["design-1", "design-2", "vgg8", "lenet"]
    col = {h.split(" (")[0]: h for h in headers}
    for e in final["entries"]:
        row, t, tot = by_name[e["name"]], e["test"], e["cost"]["totals"]
        assert row["kind"] == e["kind"] and row["architecture"] == e["description"]
        assert row[col["digital acc."]] == f"{100 * t['accuracy_digital']:.2f}%"
        assert row[col["PIM acc."]] == f"{100 * t['accuracy_pim']:.2f} ± {100 * t['accuracy_pim_std']:.2f}%"
        for key, scale in (("latency", 1e3), ("energy", 1e3), ("EDP", 1e6), ("area", 1), ("TOPS/W", 1)):
            want = tot[{"latency": "latency_s", "energy": "energy_j", "EDP": "edp_js", "area": "area_mm2",
                        "TOPS/W": "tops_per_w"}[key]] * scale
            assert float(row[col[key]]) == pytest.approx(want, rel=5e-3, abs=0.51 if want >= 100 else 0), key
        assert int(row["crossbars"]) == tot["crossbars"]
        hw = e["hardware"]
        assert row[col["crossbar / bits per cell / ADC / DAC"]] == \
            f"{hw['crossbar']} / {hw['bits_per_cell']} / {hw['adc_bits']} / {hw['dac_bits']}"
        assert row[col["bits"]] == "w8a4 x2, w4a8"
    assert "91.27 ± 0.43%" in md  # the first design, formatted by hand
    # per-component energy rows sum to the total energy of each entry
    ch, crows = md_table(section(md, "Energy and latency"), "name")
    for r in crows:
        e = next(x for x in final["entries"] if x["name"] == r[0])
        assert sum(float(v) for v in r[1:]) == pytest.approx(e["cost"]["totals"]["energy_j"] * 1e6, rel=0.01)
    assert ch[1:] == ["array (µJ)", "dac (µJ)", "adc (µJ)", "shift_add (µJ)", "digital (µJ)", "buffer (µJ)",
                      "interconnect (µJ)", "leakage (µJ)"]
    # per-layer tables for the first design and the VGG-8 baseline
    sec = section(md, "Energy and latency")
    assert "Per layer: design-1" in sec and "Per layer: vgg8" in sec and "Per layer: lenet" not in sec
    # wall time: every stage and the sum
    headers, rows = md_table(md, "stage")
    assert [r[0] for r in rows] == [*STAGES, "total"]
    assert rows[1][2] == "1:02:05 (3725 s)" and rows[1][3] == "2"
    assert rows[-1][2].endswith(f"({61.25 + 3725 + 12.5 + 30 + 8:.0f} s)")
    assert rows[-2][1] == "running (this report)"
    # retraining before/after
    headers, rows = md_table(section(md, "Retraining"), "name")
    assert rows[0][:2] == ["design-1", "design"] and rows[0][5:8] == ["81.23%", "87.34%", "+6.11 pp"]
    # per-chip accuracies and the validation metrics the designs were chosen by
    headers, rows = md_table(md, "name", nth=1)
    chips = {r[0]: r[headers.index("PIM acc. per chip (%)")] for r in rows}
    assert chips["design-1"] == "91.00, 91.50, 91.20, 91.30, 91.35" and set(chips) == set(by_name)
    headers, rows = md_table(md, "name", nth=2)
    designs = [e for e in final["entries"] if e["kind"] == "design"]
    assert [r[0] for r in rows] == [e["name"] for e in designs]
    assert [r[1] for r in rows] == [f"{100 * e['val']['accuracy_pim']:.2f}%" for e in designs]
    cap = section(md, "Pareto front")
    assert "red stars" in cap and "re-scored at final fidelity" in cap and "Right: final test-split" in cap


def test_html_escapes_text(full):
    page = full[1]["html"].read_text()
    assert "<run>" not in page and "<h1>crossnas run report: toy &lt;run&gt; &amp; co</h1>" in page
    assert "<td>vgg_pool-16 w8a4 | residual-8 w4a8 | skip | head w8</td>" in page
    assert full[1]["md"].read_text().startswith(f"# crossnas run report: {NAME}\n")


@pytest.mark.parametrize("missing", ["optional", "everything"])
def test_report_tolerates_missing_parts(tmp_path, parts, missing):
    if missing == "optional":
        run_dir = make_run(tmp_path, parts, baselines=False, hypervolume=False, retrain=False,
                           supernet_log=None)
    else:  # only run.json: an interrupted run before any stage finished
        run_dir = make_run(tmp_path, parts)
        for p in ("final.json", "search/pareto.json", "supernet/metrics.jsonl"):
            (run_dir / p).unlink()
    out = write_report(run_dir)
    md = out["md"].read_text()
    names = {p.name for p in out["plots"]}
    assert "hypervolume.png" not in names and "supernet.png" not in names
    assert "No hypervolume history recorded." in md and "## Retraining" not in md
    assert "## Wall time per stage" in md and "## Published reference" in md
    if missing == "optional":
        assert names == {"pareto.png", "components.png", "layers.png"}
        headers, rows = md_table(md, "name")
        assert [(r[0], r[1]) for r in rows] == [("design-1", "design"), ("design-2", "design")]
        assert "Per layer: design-1" in md and "Per layer: design-2" not in md
    else:
        assert names == set() and "No final evaluation entries." in md and "no final.json" in md
        assert "src=" not in out["html"].read_text()


@pytest.mark.parametrize("dataset,different", [("digits", True), ("cifar10", False)])
def test_published_reference_labelled_by_dataset(tmp_path, parts, full, dataset, different, monkeypatch):
    if dataset == "digits":
        out = full[1]
    else:  # the Pareto plot (which adds the published points for CIFAR-10) is the only plot needed here
        from crossnas.pipeline import report_plots

        for name in ("plot_components", "plot_layers"):
            monkeypatch.setattr(report_plots, name, lambda *a, **k: None)
        out = write_report(make_run(tmp_path, parts, dataset=dataset, supernet_log="contract"))
        assert [p.name for p in out["plots"]] == ["pareto.png", "hypervolume.png", "supernet.png"]
    md = out["md"].read_text()
    assert f"- dataset: {dataset}" in md
    sec = section(md, "Published reference")
    assert ("a different dataset" in sec) is different
    headers, rows = md_table(sec, "method")
    assert [r[0] for r in rows] == [p["method"] for p in PUBLISHED]
    crossnas = dict(zip(headers, rows[0]))
    assert crossnas["PIM accuracy"] == "91.27%" and crossnas["latency (ms)"] == "1.35"
    assert crossnas["EDP (mJ·ms)"] == "0.28"


def test_published_constants_match_reference_notes():
    ref = Path("/work/shared/reference/crossnas-method.md")
    if not ref.is_file():
        pytest.skip("reference notes not beside the checkout")
    text = ref.read_text()
    for p in PUBLISHED:
        pat = rf"{re.escape(p['method'].split(' (')[0])}[^|]*\| {100 * p['accuracy_pim']:g}% \| " \
              rf"{p['latency_ms']:g} \| {p['edp_mj_ms']:g} \| {p['search_gpu_h']:g} \|"
        assert re.search(pat, text), p["method"]


def test_atomic_and_stale_plots_removed(tmp_path, full, monkeypatch):
    from crossnas.pipeline import report_plots

    assert not [p for p in full[0].rglob("*") if "tmp" in p.name]
    monkeypatch.setattr(report_plots, "plot_layers", lambda *a, **k: None)  # only to save time
    # rewrite a copy of the finished run after its hypervolume list and supernet log are gone
    run_dir = Path(shutil.copytree(full[0], tmp_path / "again"))
    assert (run_dir / "report" / "hypervolume.png").is_file()
    pareto = json.loads((run_dir / "search" / "pareto.json").read_text())
    pareto["hypervolume"] = []
    (run_dir / "search" / "pareto.json").write_text(json.dumps(pareto))
    (run_dir / "supernet" / "metrics.jsonl").write_text('{"epoch": 0, "lo')  # cut by an interruption
    out = write_report(run_dir)
    assert sorted(p.name for p in (run_dir / "report").iterdir()) == sorted(p.name for p in out["plots"]) \
        == ["components.png", "pareto.png"]
    assert not [p for p in run_dir.rglob("*") if "tmp" in p.name]


@pytest.mark.parametrize("mod", ["report", "report_plots", "references"])
def test_module_level_imports_stay_light(mod):
    """matplotlib is imported inside the plotting functions, never when the module loads."""
    import crossnas.pipeline as pkg

    tree = ast.parse((Path(pkg.__file__).parent / f"{mod}.py").read_text())
    top = [a.name for n in tree.body if isinstance(n, ast.Import) for a in n.names]
    top += [n.module for n in tree.body if isinstance(n, ast.ImportFrom) and n.module]
    assert top and not [m for m in top if m.split(".")[0] in ("matplotlib", "torch")]
    light = ("crossnas.pipeline", "crossnas.errors")  # crossnas.errors imports nothing
    assert not [m for m in top if m.startswith("crossnas.") and not m.startswith(light)]


def test_damaged_json_is_named(tmp_path, parts):
    from crossnas.errors import CrossnasError

    run_dir = make_run(tmp_path, parts, supernet_log=None)
    (run_dir / "final.json").write_text('{"entries": [')
    with pytest.raises(CrossnasError, match="final.json: not valid JSON"):
        write_report(run_dir)
