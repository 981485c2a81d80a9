"""Pareto scatter and hypervolume curve (matplotlib, Agg backend)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from crossnas.search.result import SearchResult  # noqa: E402
from crossnas.search.store import atomic_savefig  # noqa: E402


def plot_pareto(result: SearchResult, path, x: str = "edp_js", y: str = "accuracy_pim",
                color: str | None = "latency_s") -> Path:
    fig, ax = plt.subplots(figsize=(6, 4.5))
    hist = [r["metrics"] for r in result.history]
    # a front re-scored at final fidelity sits among in-loop scores: say which is which
    rescored = any("search_metrics" in r for r in result.pareto)
    ax.scatter([m[x] for m in hist], [m[y] for m in hist], s=8, c="lightgray",
               label="evaluated (search fidelity)" if rescored else "evaluated")
    par = sorted((r["metrics"] for r in result.pareto), key=lambda m: m[x])
    if par:
        c = [m[color] for m in par] if color and all(color in m for m in par) else None
        sc = ax.scatter([m[x] for m in par], [m[y] for m in par], s=24, c=c, cmap="viridis",
                        label="Pareto (re-scored)" if rescored else "Pareto",
                        zorder=3)
        ax.plot([m[x] for m in par], [m[y] for m in par], lw=0.8, color="k", zorder=2)
        if c is not None:
            fig.colorbar(sc, ax=ax, label=color)
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    ax.legend(loc="best")
    return _save(fig, path)


def plot_hypervolume(result: SearchResult, path) -> Path:
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot(range(1, len(result.hypervolume) + 1), result.hypervolume, marker="o", ms=3)
    ax.set_xlabel("generation")
    ax.set_ylabel("hypervolume (normalised)")
    return _save(fig, path)


def _save(fig, path) -> Path:
    path = atomic_savefig(fig, path, dpi=120)
    plt.close(fig)
    return path
