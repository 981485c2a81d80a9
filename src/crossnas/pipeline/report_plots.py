"""Plots of the run report (matplotlib, Agg). Each function writes one PNG atomically and returns its path.

Inputs are the plain dicts of the run folder (search records, final.json entries, CostReport dicts);
matplotlib is imported inside the functions so `crossnas.pipeline.report` stays light to import.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from crossnas.pipeline.references import PUBLISHED

# Unit conversions used throughout the report: EDP is shown in mJ x ms (= 1e6 J x s), as in the papers.
MS = 1e3
MJ = 1e3
MJ_MS = 1e6
PCT = 100.0

COMPONENT_ORDER = ("array", "dac", "adc", "shift_add", "digital", "buffer", "interconnect", "leakage")
KIND_ORDER = ("conv", "linear", "pool", "act", "add")


def _subplots(*args, figsize, **kw):
    """A figure on the Agg canvas without pyplot: no global backend switch, nothing to close."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    FigureCanvasAgg(fig)
    return fig, fig.subplots(*args, **kw)


def _cmap(name: str):
    import matplotlib

    return matplotlib.colormaps[name]


def save_png(fig, path: str | os.PathLike) -> Path:
    from crossnas.search.store import atomic_savefig  # module level stays light (see tests)

    return atomic_savefig(fig, path, dpi=100)


def _auto_unit(values: Sequence[float], base: str) -> tuple[float, str]:
    """A factor and unit label (J/s family) that keeps the largest value in a readable range."""
    top = max((abs(v) for v in values), default=0.0)
    for factor, prefix in ((1.0, ""), (1e3, "m"), (1e6, "µ"), (1e9, "n"), (1e12, "p")):
        if top * factor >= 1.0:
            return factor, prefix + base
    return 1e12, "p" + base


def _num(m: dict | None, key: str) -> float | None:
    v = (m or {}).get(key)
    return float(v) if isinstance(v, int | float) and v == v else None


def plot_pareto(history: Sequence[dict], pareto: Sequence[dict], chosen: Sequence[dict],
                entries: Sequence[dict], path, *, show_published: bool = False) -> Path | None:
    """Left: validation search (all evaluated points coloured by latency, the front, the chosen designs).
    Right: final test PIM accuracy (mean +- std over chips) vs EDP for designs and baselines.

    `chosen` items: {"name", "accuracy_pim", "edp_js"} in validation metrics. Returns None when there is
    nothing to draw."""
    hist = [m for m in (r.get("metrics") for r in history)
            if _num(m, "accuracy_pim") is not None and _num(m, "edp_js") is not None]
    ok = lambda m: _num(m, "accuracy_pim") is not None and _num(m, "edp_js") is not None  # noqa: E731
    # the front as found in the loop (same fidelity as the cloud), and its re-scoring where there is one
    front = [m for m in (r.get("search_metrics") or r.get("metrics") for r in pareto) if ok(m)]
    rescored = [r["metrics"] for r in pareto if r.get("search_metrics") and ok(r.get("metrics"))]
    tested = [e for e in entries if (e.get("test") or {}).get("accuracy_pim") is not None
              and _num((e.get("cost") or {}).get("totals"), "edp_js")]
    panels = [p for p, have in (("search", hist or front), ("test", tested)) if have]
    if not panels:
        return None
    fig, axes = _subplots(1, len(panels), figsize=(6.2 * len(panels), 4.6), squeeze=False)
    for ax, panel in zip(axes[0], panels):
        if panel == "search":
            _pareto_search(fig, ax, hist, front, rescored, chosen)
        else:
            _pareto_test(ax, tested, show_published)
    return save_png(fig, path)


def _label(ax, text: str, xy, i: int) -> None:
    """Labels take turns around their markers (right-up, right-down, left-up, left-down), so the labels of
    nearby points do not print over each other."""
    dx, dy = ((7, 4), (7, -11), (-7, 4), (-7, -11))[i % 4]
    ax.annotate(text, xy, textcoords="offset points", xytext=(dx, dy), ha="left" if dx > 0 else "right",
                fontsize=8)


def _pareto_search(fig, ax, hist, front, rescored, chosen) -> None:
    if hist:
        lat = [_num(m, "latency_s") for m in hist]
        c = [v * MS for v in lat] if all(v is not None for v in lat) else None
        sc = ax.scatter([m["edp_js"] * MJ_MS for m in hist], [m["accuracy_pim"] * PCT for m in hist], s=10,
                        c=c if c is not None else "lightgray", cmap="viridis", alpha=0.75, label="evaluated")
        if c is not None:
            fig.colorbar(sc, ax=ax, label="latency (ms)")
    if front:
        front = sorted(front, key=lambda m: m["edp_js"])
        xs, ys = [m["edp_js"] * MJ_MS for m in front], [m["accuracy_pim"] * PCT for m in front]
        ax.step(xs, ys, where="post", color="k", lw=0.9, zorder=3)
        ax.scatter(xs, ys, s=36, facecolors="none", edgecolors="k", linewidths=1.2, zorder=4,
                   label="Pareto front")
    if rescored:
        ax.scatter([m["edp_js"] * MJ_MS for m in rescored], [m["accuracy_pim"] * PCT for m in rescored],
                   marker="D", s=16, color="k", zorder=4, label="front re-scored")
    for i, ch in enumerate(chosen):
        x, y = ch["edp_js"] * MJ_MS, ch["accuracy_pim"] * PCT
        ax.scatter([x], [y], marker="*", s=180, color="crimson", edgecolors="k", linewidths=0.6, zorder=5,
                   label="chosen" if i == 0 else None)
        _label(ax, ch["name"], (x, y), i)
    _edp_axes(ax, "PIM accuracy (%), validation", "search (validation split)", "lower right")


def _pareto_test(ax, tested, show_published: bool) -> None:
    styles = {"design": dict(marker="o", color="tab:blue"), "baseline": dict(marker="s", color="tab:orange")}
    seen = set()
    for i, e in enumerate(tested):
        kind = e.get("kind", "design")
        st = styles.get(kind, dict(marker="^", color="tab:gray"))
        x = e["cost"]["totals"]["edp_js"] * MJ_MS
        y = e["test"]["accuracy_pim"] * PCT
        yerr = (_num(e["test"], "accuracy_pim_std") or 0.0) * PCT
        ax.errorbar([x], [y], yerr=[yerr], fmt=st["marker"], color=st["color"], ms=7, capsize=3,
                    label=f"{kind} (PIM, test)" if kind not in seen else None, zorder=4)
        dig = _num(e["test"], "accuracy_digital")
        if dig is not None:
            ax.scatter([x], [dig * PCT], marker=st["marker"], s=40, facecolors="none", edgecolors=st["color"],
                       label="digital (quantized), test" if "dig" not in seen else None, zorder=3)
            seen.add("dig")
        seen.add(kind)
        _label(ax, e.get("name", "?"), (x, y), i)
    if show_published:
        for i, p in enumerate(PUBLISHED):
            ax.scatter([p["edp_mj_ms"]], [p["accuracy_pim"] * PCT], marker="x", color="dimgray", zorder=3,
                       label="published (own simulators)" if i == 0 else None)
            ax.annotate(p["method"], (p["edp_mj_ms"], p["accuracy_pim"] * PCT), textcoords="offset points",
                        xytext=(4, 4), fontsize=7, color="dimgray")
    _edp_axes(ax, "accuracy (%), test subset", "final evaluation (test split, mean +- std over chips)",
              "best")


def _edp_axes(ax, ylabel: str, title: str, legend_loc: str) -> None:
    ax.set_xscale("log")
    ax.set_xlabel("EDP (mJ x ms, log scale)")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(loc=legend_loc, fontsize=8)


def component_energy(cost: dict) -> dict[str, float]:
    """Energy (J) per circuit component, summed over layers (sums to totals.energy_j)."""
    out: dict[str, float] = {}
    for layer in cost.get("layers") or []:
        for k, v in (layer.get("energy_breakdown") or {}).items():
            out[k] = out.get(k, 0.0) + float(v)
    return out


def kind_latency(cost: dict) -> dict[str, float]:
    """Stage latency (s) per layer type, summed over layers (sums to totals.latency_sequential_s)."""
    out: dict[str, float] = {}
    for layer in cost.get("layers") or []:
        k = layer.get("kind", "other")
        out[k] = out.get(k, 0.0) + float(layer.get("latency_s", 0.0))
    return out


def _ordered(keys, order) -> list[str]:
    return [k for k in order if k in keys] + sorted(k for k in keys if k not in order)


def plot_components(entries: Sequence[dict], path) -> Path | None:
    """Per entry: energy by circuit component (absolute, then as shares so small networks stay readable) and
    latency by layer type with the pipelined latency marked."""
    costed = [e for e in entries if (e.get("cost") or {}).get("layers")]
    if not costed:
        return None
    names = [e.get("name", "?") for e in costed]
    energies = [component_energy(e["cost"]) for e in costed]
    lats = [kind_latency(e["cost"]) for e in costed]
    fig, (ax_e, ax_s, ax_l) = _subplots(1, 3, figsize=(max(12.0, 2.2 * len(names) + 7), 4.4))
    cmap = _cmap("tab10")
    comps = _ordered({k for d in energies for k in d}, COMPONENT_ORDER)
    totals = [sum(d.values()) for d in energies]
    f_e, u_e = _auto_unit(totals, "J")
    _stack(ax_e, names, [[d.get(c, 0.0) * f_e for d in energies] for c in comps], comps, cmap)
    ax_e.set_ylabel(f"energy per inference ({u_e})")
    ax_e.set_title("energy by component")
    ax_e.legend(fontsize=7, ncol=2)
    _stack(ax_s, names, [[d.get(c, 0.0) / t * PCT if t > 0 else 0.0 for d, t in zip(energies, totals)]
                         for c in comps], comps, cmap)
    ax_s.set_ylabel("share of energy (%)")
    ax_s.set_ylim(0, 100)
    ax_s.set_title("energy share by component")
    seq = [sum(d.values()) for d in lats]
    pipe = [float(e["cost"].get("totals", {}).get("latency_s", s)) for e, s in zip(costed, seq)]
    f_l, u_l = _auto_unit(seq + pipe, "s")
    kinds = _ordered({k for d in lats for k in d}, KIND_ORDER)
    _stack(ax_l, names, [[d.get(k, 0.0) * f_l for d in lats] for k in kinds], kinds, cmap)
    ax_l.scatter(names, [p * f_l for p in pipe], marker="D", color="k", zorder=4, label="pipelined latency")
    ax_l.set_ylabel(f"latency ({u_l})")
    ax_l.set_title("latency by layer type (stage times, summed)")
    ax_l.legend(fontsize=7)
    for ax in (ax_e, ax_s, ax_l):
        ax.tick_params(axis="x", labelrotation=30, labelsize=8)
    return save_png(fig, path)


def _stack(ax, names, series, labels, cmap) -> None:
    bottom = [0.0] * len(names)
    for i, (vals, label) in enumerate(zip(series, labels)):
        ax.bar(names, vals, bottom=bottom, label=label, color=cmap(i % 10))
        bottom = [b + v for b, v in zip(bottom, vals)]


def plot_layers(entries: Sequence[dict], path) -> Path | None:
    """One row per entry: energy per layer (stacked by component) and stage latency per layer."""
    costed = [e for e in entries if (e.get("cost") or {}).get("layers")]
    if not costed:
        return None
    n_max = max(len(e["cost"]["layers"]) for e in costed)
    fig, axes = _subplots(len(costed), 2, figsize=(max(9.0, 0.35 * n_max + 5), 3.4 * len(costed)),
                             squeeze=False)
    cmap = _cmap("tab10")
    for (ax_e, ax_l), e in zip(axes, costed):
        layers = e["cost"]["layers"]
        # module names like "blocks.0.conv1" say what they are; bare indices ("0") get their type
        labels = [f"{ly.get('name', i)} {ly.get('kind', '')}".strip() if str(ly.get("name", i)).isdigit()
                  else str(ly.get("name")) for i, ly in enumerate(layers)]
        x = list(range(len(layers)))
        comps = _ordered({k for ly in layers for k in (ly.get("energy_breakdown") or {})}, COMPONENT_ORDER)
        f_e, u_e = _auto_unit([float(ly.get("energy_j", 0.0)) for ly in layers], "J")
        bottom = [0.0] * len(layers)
        for i, comp in enumerate(comps):
            vals = [float((ly.get("energy_breakdown") or {}).get(comp, 0.0)) * f_e for ly in layers]
            ax_e.bar(x, vals, bottom=bottom, label=comp, color=cmap(i % 10))
            bottom = [b + v for b, v in zip(bottom, vals)]
        ax_e.set_ylabel(f"energy ({u_e})")
        ax_e.set_title(f"{e.get('name', '?')}: energy by layer")
        ax_e.legend(fontsize=6, ncol=2)
        f_l, u_l = _auto_unit([float(ly.get("latency_s", 0.0)) for ly in layers], "s")
        ax_l.bar(x, [float(ly.get("latency_s", 0.0)) * f_l for ly in layers], color="tab:purple")
        ax_l.set_ylabel(f"stage latency ({u_l})")
        ax_l.set_title(f"{e.get('name', '?')}: latency by layer")
        for ax in (ax_e, ax_l):
            ax.set_xticks(x)
            ax.set_xticklabels(labels, rotation=90, fontsize=7)
    return save_png(fig, path)


def plot_hypervolume(hv: Sequence[float], path) -> Path | None:
    if not hv:
        return None
    fig, ax = _subplots(figsize=(5.5, 3.6))
    ax.plot(range(1, len(hv) + 1), list(hv), marker="o", ms=3)
    ax.set_xlabel("generation")
    ax.set_ylabel("hypervolume (normalised)")
    ax.set_title("search progress (validation)")
    ax.grid(True, alpha=0.3)
    return save_png(fig, path)


def _is_num(v) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def plot_training(rows: Sequence[dict], path) -> Path | None:
    """Supernet loss per epoch (left axis) and accuracies in % (right axis): train accuracy, the mean over
    the validated subnets with a min-max band (the trainer's `val` list), or accuracies of a `val` dict."""
    pts = [(r["epoch"], float(r.get("loss", r.get("train_loss")))) for r in rows
           if _is_num(r.get("epoch")) and _is_num(r.get("loss", r.get("train_loss")))]
    if not pts:
        return None
    fig, ax = _subplots(figsize=(5.8, 3.6))
    ax.plot([p[0] for p in pts], [p[1] for p in pts], color="tab:blue", label="train loss")
    ax.set_xlabel("epoch")
    ax.set_ylabel("train loss")
    series: dict[str, list[tuple[float, float]]] = {}
    band: list[tuple[float, float, float]] = []
    for r in rows:
        e = r.get("epoch")
        if not _is_num(e):
            continue
        if _is_num(r.get("train_acc")):
            series.setdefault("train acc", []).append((e, r["train_acc"]))
        val = r.get("val")
        if isinstance(val, dict):
            for k, v in val.items():
                if _is_num(v) and "acc" in k:
                    series.setdefault(f"val {k}", []).append((e, v))
        elif isinstance(val, list):
            accs = [v["acc"] for v in val if isinstance(v, dict) and _is_num(v.get("acc"))]
            if accs:
                band.append((e, min(accs), max(accs)))
        if _is_num(r.get("val_acc_mean")):
            series.setdefault("val acc (mean over subnets)", []).append((e, r["val_acc_mean"]))
    if series or band:
        ax2 = ax.twinx()
        for i, (k, vp) in enumerate(series.items()):
            ax2.plot([p[0] for p in vp], [p[1] * PCT for p in vp], ls="--", color=f"C{i + 1}", label=k)
        if band:
            ax2.fill_between([b[0] for b in band], [b[1] * PCT for b in band], [b[2] * PCT for b in band],
                             color="tab:green", alpha=0.15, label="val acc (subnet min-max)")
        ax2.set_ylabel("accuracy (%)")
        ax2.legend(loc="center right", fontsize=7)
    ax.set_title("supernet training")
    ax.grid(True, alpha=0.3)
    return save_png(fig, path)
