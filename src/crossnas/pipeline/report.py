"""The run report: `report.md` and a self-contained `report.html` built from a `crossnas run` folder.

Both files render the same list of blocks (headings, paragraphs, tables, images), so they carry the same
content; the HTML embeds every plot as a base64 PNG. Every part of the run folder except `run.json` is
optional: sections whose inputs are missing are left out or say so.
"""

from __future__ import annotations

import base64
import html
import json
import time
from pathlib import Path
from typing import Any

from crossnas.pipeline import report_plots as rp
from crossnas.pipeline.references import PUBLISHED, REFERENCE_DATASET

STAGE_ORDER = ("supernet", "search", "baselines", "retrain", "final", "report")
PLOT_NAMES = ("pareto.png", "components.png", "layers.png", "hypervolume.png", "supernet.png")

# ("h1"|"h2"|"p", text) | ("ul", [text]) | ("table", headers, rows) | ("img", png path, alt, path in the md)
Block = tuple


# ---------------------------------------------------------------- formatting
def fmt_pct(v: Any) -> str:
    return f"{100 * float(v):.2f}%" if _isnum(v) else "-"


def fmt_pm(mean: Any, std: Any) -> str:
    if not _isnum(mean):
        return "-"
    return f"{100 * float(mean):.2f} ± {100 * float(std):.2f}%" if _isnum(std) else fmt_pct(mean)


def fmt_num(v: Any, scale: float = 1.0) -> str:
    """Three significant figures, no exponent for readable magnitudes."""
    if not _isnum(v):
        return "-"
    x = float(v) * scale
    if x == 0:
        return "0"
    a = abs(x)
    if a >= 100:
        return f"{x:.0f}"
    if a >= 1e-4:
        return f"{x:.3g}"
    return f"{x:.2e}"


def fmt_duration(s: Any) -> str:
    if not _isnum(s):
        return "-"
    s = float(s)
    if s < 60:
        return f"{s:.1f} s"
    m, sec = divmod(int(round(s)), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{sec:02d} ({s:.0f} s)"


def _isnum(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and v == v


def compact_bits(bits: list[dict] | None) -> str:
    """Run-length per-layer bits in order: 'w8a4 x3, w4a8 x2'."""
    if not bits:
        return "-"
    runs: list[list] = []
    for b in bits:
        tag = f"w{b.get('weight_bits', '?')}a{b.get('act_bits', '?')}"
        if runs and runs[-1][0] == tag:
            runs[-1][1] += 1
        else:
            runs.append([tag, 1])
    return ", ".join(t if n == 1 else f"{t} x{n}" for t, n in runs)


def hw_summary(hw: dict | None) -> str:
    if not hw:
        return "-"
    return (f"{hw.get('crossbar', '?')} / {hw.get('bits_per_cell', '?')} / {hw.get('adc_bits', '?')}"
            f" / {hw.get('dac_bits', '?')}")


def _vec(v: Any) -> str:
    return "(" + ", ".join(f"{float(x):.4g}" for x in v) + ")" if isinstance(v, list | tuple) else str(v)


def _dataset_key(name: Any) -> str:
    return str(name or "").lower().replace("-", "").replace("_", "")


# ---------------------------------------------------------------- loading
def _read_json(path: Path) -> Any:
    if not path.is_file():
        return None
    from crossnas.jsonio import read_json

    # written atomically, so damage is worth reporting, not hiding
    return read_json(path, "JSON written by crossnas run", hint="restore it or start a new run folder")


def _read_typed(path: Path, model: str) -> dict | None:
    """A file of the run schema (crossnas.schema), validated: a missing metric is an error naming it."""
    if not path.is_file():
        return None
    from crossnas import schema

    return schema.read(path, getattr(schema, model), "JSON written by crossnas run").model_dump()


def _read_jsonl(path: Path) -> list[dict]:
    from crossnas.jsonio import read_text

    rows = []
    if path.is_file():
        for line in read_text(path, "JSON lines", "restore it or start a new run folder").splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:  # a line cut by an interrupted write
                continue
    return [r for r in rows if isinstance(r, dict)]


# ---------------------------------------------------------------- sections
def _header(run: dict, name: str, final: dict | None, search: dict | None, dataset: str) -> list[Block]:
    cfg = run.get("config") or {}
    blocks: list[Block] = [("h1", f"crossnas run report: {name}")]
    vers = run.get("versions") or {}
    now = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    lines = [f"dataset: {dataset or '-'}", f"report written: {now}",
             "versions: " + (", ".join(f"{k} {v}" for k, v in vers.items()) or "-"),
             f"device: {run.get('device', '-')}"]
    if run.get("seeds"):
        lines.append("seeds: " + ", ".join(f"{k}={v}" for k, v in run["seeds"].items()))
    blocks.append(("ul", lines))
    blocks.append(("h2", "Configuration"))
    blocks.append(("ul", _config_lines(cfg, search)))
    if final:
        sub, split = final.get("test_subset") or {}, final.get("split", "test")
        n, of = sub.get("n"), sub.get("of")
        if n and of and n >= of:
            where = f"all {n} images of the held-out {split} split"
        elif n:
            where = (f"a fixed subset of {n}{f' of the {of}' if of else ''} images of the held-out {split} "
                     f"split (seed {sub.get('seed', '-')})")
        else:
            where = f"the held-out {split} split"
        blocks.append(("p", (
            f"How to read the numbers: the Pareto front was searched and the designs were chosen on the "
            f"validation split only. The final numbers are measured on {where}, over "
            f"{final.get('chips', '?')} chip instances "
            f"(device variation and stuck-at faults as configured) with the "
            f"{final.get('fidelity', 'exact')} simulator. Every design and baseline sees the same images.")))
    else:
        blocks.append(("p", "The final evaluation has not run yet (no final.json): only search results "
                            "(validation split) are shown."))
    return blocks


def _config_lines(cfg: dict, search: dict | None) -> list[str]:
    def sec(k):
        v = cfg.get(k)
        return v if isinstance(v, dict) else {}

    def short(v):
        if isinstance(v, list | tuple):
            return "[" + ", ".join(map(str, v)) + "]"
        if isinstance(v, dict):
            return "{" + ", ".join(f"{k}: {x}" for k, x in v.items()) + "}"
        return str(v)

    def kv(d, keys):
        return ", ".join(f"{k}={short(d[k])}" for k in keys if d.get(k) not in (None, {}, [])) or "-"

    hw, sp, se = sec("hardware"), sec("space"), sec("search")
    lines = []
    if sec("data"):
        lines.append(f"data: {kv(sec('data'), ('name', 'limit', 'val_fraction', 'seed'))}")
    hw_txt = str(hw.get("preset", "-"))
    if hw.get("set"):
        hw_txt += " with " + ", ".join(f"{k}={v}" for k, v in hw["set"].items())
    lines.append(f"hardware: {hw_txt}")
    lines.append(f"space: {sp.get('preset') or sp.get('file') or '-'}")
    lines.append("search: " + kv(se, ("strategy", "mode", "budget", "pop_size", "fidelity", "chips",
                                      "val_limit", "seed")))
    if se.get("final_fidelity"):
        lines.append(f"Pareto front re-scored on the validation split with the {se['final_fidelity']} "
                     f"simulator over {se.get('final_chips', '?')} chips before selection")
    objs = se.get("objectives") or (search or {}).get("objectives")
    if objs:
        lines.append("objectives: " + ", ".join(f"{k} ({v})" for k, v in objs.items()))
    cons = se.get("constraints") or (search or {}).get("constraints")
    if cons:
        lines.append(f"constraints: {cons}")
    if search:
        lines.append(f"search result: {search.get('n_evaluations', '?')} evaluations over "
                     f"{search.get('generations', '?')} generations, "
                     f"{len(search.get('pareto') or [])} designs on the Pareto front")
    for key, keys in (("select", ("rule", "k", "metric", "budget")),
                      ("supernet", ("epochs", "batch_size", "lr", "noise_sigma")),
                      ("retrain", ("epochs", "lr", "noise_sigma")),
                      ("baselines", ("models", "width_mult", "epochs")),
                      ("final", ("test_limit", "seed", "chips", "fidelity"))):
        if sec(key):
            lines.append(f"{key}: {kv(sec(key), keys)}")
    return lines


def _entries_table(entries: list[dict]) -> list[Block]:
    headers = ["name", "kind", "selected by", "architecture", "bits (w/a per layer)",
               "crossbar / bits per cell / ADC / DAC", "digital acc. (test)", "PIM acc. (test, ± std)",
               "latency (ms)", "energy (mJ)", "area (mm²)", "EDP (mJ·ms)", "TOPS/W", "crossbars"]
    rows = []
    for e in entries:
        t = (e.get("cost") or {}).get("totals") or {}
        test = e.get("test") or {}
        rows.append([
            e.get("name", "?"), e.get("kind", "-"), e.get("selected_by") or "-", e.get("description") or "-",
            compact_bits(e.get("bits")), hw_summary(e.get("hardware")),
            fmt_pct(test.get("accuracy_digital")),
            fmt_pm(test.get("accuracy_pim"), test.get("accuracy_pim_std")),
            fmt_num(t.get("latency_s"), rp.MS), fmt_num(t.get("energy_j"), rp.MJ), fmt_num(t.get("area_mm2")),
            fmt_num(t.get("edp_js"), rp.MJ_MS), fmt_num(t.get("tops_per_w")), fmt_num(t.get("crossbars")),
        ])
    out: list[Block] = [("h2", "Chosen designs and baselines (test split)"), ("table", headers, rows)]
    hw_rows = []
    for e in entries:
        hw, chips = e.get("hardware") or {}, (e.get("test") or {}).get("per_chip") or []
        hw_rows.append([e.get("name", "?"), hw.get("device", "-"), fmt_num(hw.get("variation")),
                        " / ".join(fmt_num(v) for v in hw.get("stuck_at") or []) or "-",
                        (e.get("cost") or {}).get("hardware") or "-",
                        ", ".join(f"{100 * float(a):.2f}" for a in chips) or "-", e.get("design_dir") or "-"])
    out += [("p", "Device and fault settings of each entry, its PIM test accuracy on each chip instance, "
                  "and where its exported design lives:"),
            ("table", ["name", "device", "variation (rel.)", "stuck-at (off / on)", "hardware",
                       "PIM acc. per chip (%)", "design folder"], hw_rows)]
    val_rows = [[e.get("name", "?"), fmt_pct((e.get("val") or {}).get("accuracy_pim")),
                 fmt_num((e.get("val") or {}).get("edp_js"), rp.MJ_MS), fmt_pct(test.get("accuracy_pim"))]
                for e in entries if e.get("val") for test in [e.get("test") or {}]]
    if val_rows:
        out += [("p", "Validation metrics at selection time (search), next to the test result:"),
                ("table", ["name", "PIM acc. (val, search)", "EDP (mJ·ms, search)", "PIM acc. (test)"],
                 val_rows)]
    return out


def _comparison_table(final: dict | None) -> list[Block]:
    rows = []
    for c in (final or {}).get("comparisons") or []:
        d, r = c["accuracy_diff"], c["ratio"]
        chip = "same (the design's)" if c["same_chip"] else "baseline on the default chip, design on its own"
        rows.append([c["design"], c["baseline"], chip, fmt_pct(c["accuracy_pim"]),
                     fmt_pct(c["baseline_accuracy_pim"]),
                     f"{100 * d['diff']:+.2f} [{100 * d['low']:+.2f}, {100 * d['high']:+.2f}]",
                     fmt_num(r.get("edp_js")), fmt_num(r.get("energy_j")), fmt_num(r.get("latency_s")),
                     c["verdict"]])
    if not rows:
        return []
    n = ((final or {}).get("test_subset") or {}).get("n")
    return [("h2", "The picked design against the baselines (paired)"),
            ("p", f"Differences over the same {n} test images and {final.get('chips')} chips: per image, the "
                  "design's fraction of correct chips minus the baseline's; mean and its 95% interval "
                  "(t over images). Ratios: design / baseline (below 1: the design is cheaper)."),
            ("table", ["design", "baseline", "chip", "design PIM acc.", "baseline PIM acc.",
                       "difference, points [95% interval]", "EDP ratio", "energy ratio", "latency ratio",
                       "verdict"], rows)]


def _layer_table(entry: dict) -> Block:
    rows = []
    for ly in (entry.get("cost") or {}).get("layers") or []:
        rows.append([str(ly.get("name", "")), ly.get("kind", "-"), fmt_num(ly.get("crossbars")),
                     fmt_num(ly.get("adc_bits")) if ly.get("kind") in ("conv", "linear") else "-",
                     fmt_num(ly.get("latency_s"), 1e6), fmt_num(ly.get("energy_j"), 1e6)])
    return ("table", ["layer", "type", "crossbars", "ADC bits", "stage latency (µs)", "energy (µJ)"], rows)


def _layer_entries(entries: list[dict]) -> list[dict]:
    """The first design and the VGG-8 baseline (else the first baseline)."""
    costed = [e for e in entries if (e.get("cost") or {}).get("layers")]
    designs = [e for e in costed if e.get("kind") == "design"]
    bases = [e for e in costed if e.get("kind") == "baseline"]
    vgg = [e for e in bases if "vgg" in str(e.get("name", "")).lower()]
    picked = designs[:1] + (vgg or bases)[:1]
    return picked or costed[:1]


def _wall_table(run: dict) -> list[Block]:
    stages = run.get("stages") or {}
    if not stages:
        return [("h2", "Wall time per stage"), ("p", "No stage timings recorded.")]
    names = [s for s in STAGE_ORDER if s in stages] + [s for s in stages if s not in STAGE_ORDER]
    rows, total = [], 0.0
    for s in names:
        st = stages[s] or {}
        w = st.get("wall_s")
        total += float(w) if _isnum(w) else 0.0
        status = st.get("status", "-")
        if s == "report" and status == "running":
            status = "running (this report)"
        rows.append([s, status, fmt_duration(w), str(st.get("runs", "-"))])
    rows.append(["total", "", fmt_duration(total), ""])
    return [("h2", "Wall time per stage"),
            ("p", "Summed over resumed runs; 'runs' counts how many times a stage was started."),
            ("table", ["stage", "status", "wall time", "runs"], rows)]


def _retrain_table(entries: list[dict]) -> list[Block]:
    rows = []
    for e in entries:
        r = e.get("retrain")
        if not r or "@" in str(e.get("name", "")):  # a baseline on a design's chip: trained once, above
            continue
        b, a = r.get("val_acc_before"), r.get("val_acc_after")
        delta = f"{100 * (float(a) - float(b)):+.2f} pp" if _isnum(a) and _isnum(b) else "-"
        curve = " ".join(f"{100 * float(v):.1f}" for v in r.get("val_curve") or [] if _isnum(v)) or "-"
        rows.append([e.get("name", "?"), e.get("kind", "-"), str(r.get("epochs", "-")),
                     str(r.get("best_epoch", "-")), fmt_num(r.get("noise_sigma")), fmt_pct(b), fmt_pct(a),
                     delta, curve])
    if not rows:
        return []
    return [("h2", "Retraining (validation split)"),
            ("p", "Quantization- and noise-aware training at each entry's own bits and hardware, one recipe "
                  "for designs and baselines, until the validation accuracy stops improving (the best "
                  "epoch's weights are kept). Designs start from the supernet's weights or from scratch "
                  "(retrain.init); baselines from scratch (their 'before' is the untrained network)."),
            ("table", ["name", "kind", "epochs", "best epoch", "noise sigma", "val acc. before",
                       "val acc. after", "change", "val acc. per epoch (%)"], rows)]


def _published(dataset: str) -> list[Block]:
    same = _dataset_key(dataset) == REFERENCE_DATASET
    title = "Published reference (CIFAR-10" + (")" if same else ", a different dataset)")
    note = ("Figures from the papers, each measured with its own simulator and hardware assumptions; they "
            "are context, not a like-for-like comparison.")
    if not same:
        note = (f"These are CIFAR-10 results, a different dataset from this run's ({dataset or 'unknown'}), "
                "so the numbers are not comparable. " + note)
    rows = [[p["method"], fmt_pct(p["accuracy_pim"]), fmt_num(p["latency_ms"]), fmt_num(p["edp_mj_ms"]),
             fmt_num(p["search_gpu_h"]), p["source"]] for p in PUBLISHED]
    return [("h2", title), ("p", note),
            ("table", ["method", "PIM accuracy", "latency (ms)", "EDP (mJ·ms)", "search (GPU-hours)",
                       "source"], rows)]


def _chosen_points(entries: list[dict], search: dict | None) -> list[dict]:
    """Validation (search-time) position of each chosen design: its `val` metrics, else its search record."""
    recs = {}
    if search:
        for r in (search.get("history") or []) + (search.get("pareto") or []):
            recs[r.get("key")] = r
    out = []
    for e in entries:
        if e.get("kind") != "design":
            continue
        m = dict((recs.get(e.get("source_key")) or {}).get("metrics") or {})
        m.update(e.get("val") or {})
        if _isnum(m.get("accuracy_pim")) and _isnum(m.get("edp_js")):
            out.append({"name": e.get("name", "?"), "accuracy_pim": m["accuracy_pim"], "edp_js": m["edp_js"]})
    return out


# ---------------------------------------------------------------- rendering
def _md_cell(s: Any) -> str:
    return str(s).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def render_md(blocks: list[Block]) -> str:
    out = []
    for b in blocks:
        if b[0] == "h1":
            out.append(f"# {b[1]}")
        elif b[0] == "h2":
            out.append(f"## {b[1]}")
        elif b[0] == "p":
            out.append(b[1])
        elif b[0] == "ul":
            out.append("\n".join(f"- {x}" for x in b[1]))
        elif b[0] == "table":
            lines = ["| " + " | ".join(_md_cell(h) for h in b[1]) + " |", "|" + "---|" * len(b[1])]
            lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in b[2]]
            out.append("\n".join(lines))
        elif b[0] == "img":
            out.append(f"![{b[2]}]({b[3]})")
    return "\n\n".join(out) + "\n"


_CSS = """body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1200px;
margin:2em auto;padding:0 1em;color:#222;line-height:1.45}
h1{font-size:1.6em;border-bottom:2px solid #444}
h2{font-size:1.25em;margin-top:1.8em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;margin:.8em 0;font-size:.85em;display:block;overflow-x:auto}
th,td{border:1px solid #ccc;padding:.3em .55em;text-align:left;vertical-align:top}
th{background:#f0f0f0}tr:nth-child(even) td{background:#fafafa}
img{max-width:100%;height:auto;border:1px solid #eee;margin:.5em 0}"""


def render_html(blocks: list[Block], title: str) -> str:
    e = html.escape
    out = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
           f"<title>{e(title)}</title>", f"<style>{_CSS}</style>", "</head>", "<body>"]
    for b in blocks:
        if b[0] in ("h1", "h2"):
            out.append(f"<{b[0]}>{e(b[1])}</{b[0]}>")
        elif b[0] == "p":
            out.append(f"<p>{e(b[1])}</p>")
        elif b[0] == "ul":
            out.append("<ul>" + "".join(f"<li>{e(str(x))}</li>" for x in b[1]) + "</ul>")
        elif b[0] == "table":
            head = "".join(f"<th>{e(str(h))}</th>" for h in b[1])
            body = "".join("<tr>" + "".join(f"<td>{e(str(c))}</td>" for c in row) + "</tr>" for row in b[2])
            out.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
        elif b[0] == "img":
            data = base64.b64encode(Path(b[1]).read_bytes()).decode("ascii")
            out.append(f'<figure><img alt="{e(b[2])}" src="data:image/png;base64,{data}"></figure>')
    out += ["</body>", "</html>", ""]
    # pure ASCII (non-ASCII as character references): correct whatever encoding the file is read with
    return "\n".join(out).encode("ascii", "xmlcharrefreplace").decode("ascii")


# ---------------------------------------------------------------- entry point
def write_report(run_dir: str | Path) -> dict:
    """Read a run folder and write run_dir/report.md, run_dir/report.html (plots embedded) and the PNGs
    under run_dir/report/. Returns {"md": Path, "html": Path, "plots": [Path]}."""
    from crossnas.search.store import atomic_write  # importing crossnas.search loads torch: only when writing

    run_dir = Path(run_dir)
    run = _read_json(run_dir / "run.json") or {}
    search = _read_typed(run_dir / "search" / "pareto.json", "ParetoFile")
    final = _read_typed(run_dir / "final.json", "FinalResult")
    train_rows = _read_jsonl(run_dir / "supernet" / "metrics.jsonl")
    entries = list((final or {}).get("entries") or [])
    dataset = (final or {}).get("dataset") or ((run.get("config") or {}).get("data") or {}).get("name") or ""
    plot_dir = run_dir / "report"
    plots: list[Path] = []

    def add_plot(p: Path | None, alt: str, blocks: list[Block]) -> None:
        if p is not None:
            plots.append(p)
            blocks.append(("img", p, alt, p.relative_to(run_dir).as_posix()))

    name = run.get("name") or run_dir.name
    blocks = _header(run, name, final, search, dataset)

    blocks.append(("h2", "Pareto front"))
    chosen = _chosen_points(entries, search)
    p = rp.plot_pareto((search or {}).get("history") or [], (search or {}).get("pareto") or [],
                       chosen, entries, plot_dir / "pareto.png",
                       show_published=_dataset_key(dataset) == REFERENCE_DATASET)
    if p is None:
        blocks.append(("p", "No search or final results to plot."))
    else:
        has_search = bool((search or {}).get("history") or (search or {}).get("pareto"))
        has_test = any((e.get("test") or {}).get("accuracy_pim") is not None
                       and _isnum(((e.get("cost") or {}).get("totals") or {}).get("edp_js")) for e in entries)
        left, right = ("Left", "Right") if has_search and has_test else ("Shown", "Shown")
        parts = []
        if has_search:
            rescored = any(r.get("search_metrics") for r in (search or {}).get("pareto") or [])
            parts.append(f"{left}: every evaluated candidate of the search (validation split, search-time "
                         "fidelity), coloured by latency; the Pareto front outlined in black"
                         + ("; black diamonds: the front re-scored at final fidelity" if rescored else "")
                         + ("; the chosen designs as red stars at the validation metrics they were selected "
                            "by" if chosen else "") + ".")
        if has_test:
            parts.append(f"{right}: final test-split accuracy of the designs (circles) and baselines "
                         "(squares): PIM accuracy as mean ± std over chips (filled, error bars) and digital "
                         "quantized accuracy (hollow).")
        parts.append("EDP in mJ·ms (1 mJ·ms = 1e-6 J·s), log scale.")
        blocks.append(("p", " ".join(parts)))
        add_plot(p, "Pareto front: accuracy vs EDP", blocks)

    if entries:
        blocks += _entries_table(entries)
        blocks += _comparison_table(final)
        blocks.append(("p", "Units: latency (pipelined) in ms, energy per inference in mJ, EDP in mJ·ms; "
                            "bits run-length encoded over the layers in order (w = weight bits, "
                            "a = activation bits)."))
    else:
        blocks += [("h2", "Chosen designs and baselines (test split)"), ("p", "No final evaluation entries.")]

    blocks.append(("h2", "Energy and latency by component and by layer"))
    p = rp.plot_components(entries, plot_dir / "components.png")
    if p is None:
        blocks.append(("p", "No cost reports to break down."))
    else:
        blocks.append(("p", "Energy is split by circuit component. The cost model gives latency per layer "
                            "stage rather than per component, so latency is split by layer type (the stage "
                            "times sum to the sequential latency; the diamond is the pipelined latency used "
                            "everywhere else)."))
        add_plot(p, "energy by component and latency by layer type", blocks)
        comp_rows = []
        for e in entries:
            if (e.get("cost") or {}).get("layers"):
                ce = rp.component_energy(e["cost"])
                comp_rows.append([e.get("name", "?")] + [fmt_num(ce.get(c), 1e6) for c in rp.COMPONENT_ORDER])
        blocks.append(("table", ["name"] + [f"{c} (µJ)" for c in rp.COMPONENT_ORDER], comp_rows))
        picked = _layer_entries(entries)
        p = rp.plot_layers(picked, plot_dir / "layers.png")
        add_plot(p, "energy and latency by layer", blocks)
        for e in picked:
            blocks += [("p", f"Per layer: {e.get('name', '?')}"), _layer_table(e)]

    blocks.append(("h2", "Hypervolume per generation"))
    p = rp.plot_hypervolume((search or {}).get("hypervolume") or [], plot_dir / "hypervolume.png")
    if p is None:
        blocks.append(("p", "No hypervolume history recorded."))
    else:
        ideal, ref = (search or {}).get("hv_ideal"), (search or {}).get("hv_ref")
        where = (f" (ideal {_vec(ideal)}, reference {_vec(ref)}, in minimisation form: maximised objectives "
                 "negated)" if ideal and ref else "")
        blocks.append(("p", "Hypervolume of the feasible validation-split front after each generation, "
                            "in objective space normalised so that the ideal point maps to 0 and the "
                            f"reference point to 1{where}; higher is better."))
        add_plot(p, "hypervolume per generation", blocks)

    p = rp.plot_training(train_rows, plot_dir / "supernet.png")
    if p is not None:
        blocks.append(("h2", "Supernet training"))
        add_plot(p, "supernet training curve", blocks)

    blocks += _wall_table(run)
    blocks += _retrain_table(entries)
    blocks += _published(dataset)

    md_path, html_path = run_dir / "report.md", run_dir / "report.html"
    atomic_write(md_path, render_md(blocks))
    atomic_write(html_path, render_html(blocks, f"crossnas run report: {name}"))
    # a plot from an earlier report that this one no longer makes must not linger beside it
    for stale in set(PLOT_NAMES) - {p.name for p in plots}:
        (plot_dir / stale).unlink(missing_ok=True)
    return {"md": md_path, "html": html_path, "plots": plots}
