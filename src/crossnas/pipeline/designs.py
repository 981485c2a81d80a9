"""Designs and baselines trained alike, and the choice of designs: one training recipe (the `retrain`
section: epochs as a maximum, patience, the noise-aware step), the designs' starting weights (fresh or the
supernet's), re-ranking of the front's first candidates by a short standalone training, and the
validation-accuracy floor (`select.min_accuracy`).

Selection runs before the retrain stage starts, so a floor no design meets stops the run with the
`select` section still open to change: `--resume` continues with another floor, re-using every
re-ranking training already done (`select/rerank.json`).
"""

from __future__ import annotations

import json
import time

import numpy as np
import torch
from torch.utils.data import DataLoader, Subset

from crossnas.errors import CrossnasError
from crossnas.search.accuracy import accuracy_metrics
from crossnas.search.store import atomic_write

RERANK = "rerank.json"
# a re-ranked record's accuracies replace the search's, and with them the image counts they compare by
_RESCORED_COUNTS = {f"{m}_{c}" for m in ("accuracy_pim", "accuracy_digital") for c in ("correct", "total")}


def recipe(p, hw, *, baseline: bool = False, epochs: int | None = None) -> dict:
    """train_qat keywords of the run's one recipe; `epochs` (a short training) runs every epoch."""
    rc, bc = p.cfg.retrain, p.cfg.baselines
    lr = bc.lr if baseline and bc.lr is not None else rc.lr
    full = bc.epochs if baseline and bc.epochs is not None else rc.epochs
    return {"epochs": full if epochs is None else epochs, "patience": rc.patience if epochs is None else None,
            "lr": lr, "batch_size": rc.batch_size, "momentum": rc.momentum, "weight_decay": rc.weight_decay,
            "noise_sigma": hw.device.variation if rc.noise_sigma is None else rc.noise_sigma}


def start_module(p, network, seed: int, init: str | None = None):
    """A design's module before training: the supernet's weights (BN recalibrated) or fresh seeded ones
    (`init`, default `retrain.init`)."""
    from crossnas.supernet import recalibrate_bn
    from crossnas.supernet.model import build_subnet

    if (init or p.cfg.retrain.init) == "supernet":
        net = p.supernet.extract(network)
        recalibrate_bn(net, p.train_loader(seed), n_batches=p.cfg.search.bn_batches, seed=seed)
        return net
    s, sn = p.splits, p.supernet
    torch.manual_seed(seed)
    return build_subnet(network, s.in_channels, s.num_classes, s.input_size, head_hidden=sn.spec.head_hidden,
                        dropout=sn.spec.dropout)


def train_network(p, network, hw, *, seed: int, label: str, epochs: int | None = None,
                  init: str | None = None, progress=None):
    """(module, train info) for a design trained with the recipe from its starting weights; `progress`:
    a stage task to advance (crossnas.progress), else the pipeline's setting."""
    from crossnas.pipeline.retrain import train_qat

    init = init or p.cfg.retrain.init
    net = start_module(p, network, seed, init)
    torch.manual_seed(seed)
    progress = p.progress if progress is None else progress
    info = train_qat(net, p.splits.train, p.splits.val, seed=seed, device=p.device, progress=progress,
                     label=label, augment=p.cfg.augment, **recipe(p, hw, epochs=epochs))
    info["init"] = init
    return net, info


# --- re-ranking --------------------------------------------------------------------------------------
def _rerank_meta(p) -> dict:
    sc, rc = p.cfg.search, p.cfg.retrain
    return {"epochs": p.cfg.select.rerank_epochs, "init": "supernet", "lr": rc.lr,
            "batch_size": rc.batch_size, "noise_sigma": rc.noise_sigma, "seed": rc.seed,
            "fidelity": sc.final_fidelity, "chips": sc.final_chips, "val_limit": sc.val_limit}


def rerank(p, records: list[dict]) -> list[dict]:
    """Each record re-scored after `select.rerank_epochs` of standalone training from the supernet's
    weights (a few epochs from scratch rank by how fast a network learns, not how far): validation accuracy
    (digital, whole split) and PIM accuracy at the search's final fidelity on its validation subset;
    the search's scores are kept under `search_scores`. Cached per genome key."""
    from crossnas.analog import evaluate_pim

    path = p.run_dir / "select" / RERANK
    meta = _rerank_meta(p)
    saved = json.loads(path.read_text()) if path.exists() else {}
    cache = saved.get("results", {}) if saved.get("meta") == meta else {}
    sc, out = p.cfg.search, []
    val = p.splits.val
    if sc.val_limit is not None and len(val) > sc.val_limit:
        val = Subset(val, range(sc.val_limit))
    for i, rec in enumerate(records):
        if rec["key"] not in cache:
            t0 = time.perf_counter()
            arch = p.space.to_arch(np.asarray(rec["genome"], dtype=np.int64))
            hw = p.hardware.with_overrides(arch.hardware)
            seed = p.cfg.retrain.seed + 500 + i
            net, info = train_network(p, arch.network, hw, seed=seed, label=f"re-rank {i + 1}/{len(records)}",
                                      epochs=meta["epochs"], init="supernet")
            calib = [b for _, b in zip(range(sc.calib_batches), p.train_loader(sc.seed, sc.batch_size))]
            pim = evaluate_pim(net, DataLoader(val, batch_size=sc.batch_size), hw, calib_loader=calib,
                               chips=sc.final_chips, fidelity=sc.final_fidelity, seed=sc.seed,
                               device=str(p.device))
            counts = {**accuracy_metrics("accuracy_pim", pim.per_chip, len(val)),
                      **accuracy_metrics("accuracy_digital", [info["val_acc_after"]], len(p.splits.val))}
            counts = {k: v for k, v in counts.items() if k in _RESCORED_COUNTS}
            cache[rec["key"]] = {"accuracy_digital": info["val_acc_after"],
                                 "accuracy_pim": float(pim.accuracy_pim), "val_curve": info["val_curve"],
                                 "counts": counts,
                                 "wall_s": time.perf_counter() - t0}
            atomic_write(path, json.dumps({"meta": meta, "results": cache}, indent=1))
        r = cache[rec["key"]]
        # the search's image counts go with its scores: selection compares accuracies by their counts
        # (crossnas.search.accuracy.exact_value), so stale ones would rank by the search after all
        kept = {k: v for k, v in rec["metrics"].items() if k not in _RESCORED_COUNTS}
        out.append({**rec, "search_scores": rec["metrics"], "rerank": r,
                    "metrics": {**kept, "accuracy_pim": r["accuracy_pim"],
                                "accuracy_digital": r["accuracy_digital"], **r.get("counts", {})}})
    return out


def rerank_pool(result: dict, select) -> list[dict]:
    """Where re-ranking draws from: for top_k and best_under every feasible evaluated candidate, once per
    network (one-shot scores are noisy by a point or more, so the candidates just below the front are as
    likely to be best as those on it); for the knee, the front (a knee is a point of the front)."""
    from crossnas.search.problem import is_feasible

    if select.rule == "knee":
        return result["pareto"]
    seen, pool = set(), []
    for r in result["history"]:
        if r["key"] not in seen and is_feasible(r["metrics"], result.get("constraints")):
            seen.add(r["key"])
            pool.append(r)
    return pool or result["pareto"]


def rule_order(pool: list[dict], objectives: dict, select, budget: dict[str, float]) -> list[dict]:
    """The pool in the order the selection rule prefers it (the re-ranking budget takes the first)."""
    from crossnas.pipeline.select import select_designs

    return [r for r, _ in select_designs(pool, pool, objectives, rule=select.rule, k=len(pool),
                                         metric=select.metric, budget=budget)]


def picked_design(entries: list[dict]) -> str | None:
    """The design the run recommends: the best validation accuracy after retraining (validation only, so
    the test split stays unread by the choice); ties go to the earlier design."""
    designs = [e for e in entries if e.get("kind") == "design"]
    if not designs:
        return None
    return max(designs, key=lambda e: (float((e.get("retrain") or {}).get("val_acc_after") or 0.0),
                                       -designs.index(e)))["name"]


# --- budgets and the floor ---------------------------------------------------------------------------
def relative_variants(p) -> dict[str, list]:
    """{baseline: its trained variants (baseline_layers)} for every budget relative to a baseline, loaded
    once for the budget's value and the own-chip check."""
    from crossnas.pipeline.baselines import baseline_layers
    from crossnas.pipeline.config import RelativeBudget

    names = {b.relative_to for b in p.cfg.select.budget.values() if isinstance(b, RelativeBudget)}
    return {n: baseline_layers(p, n) for n in sorted(names)}


def budget_values(p, variants: dict[str, list]) -> tuple[dict[str, float], list[str]]:
    """`select.budget` as numbers (a relative one from its baseline's cost) and how each was set."""
    from crossnas.pipeline.baselines import lowest_cost
    from crossnas.pipeline.config import RelativeBudget

    out, how = {}, []
    for m, b in p.cfg.select.budget.items():
        if not isinstance(b, RelativeBudget):
            out[m] = float(b)
            how.append(f"{m} <= {b:g}")
            continue
        found = lowest_cost(variants[b.relative_to], m)
        if found is None:
            raise CrossnasError(f"select.budget.{m}.relative_to: baseline {b.relative_to!r} was not trained "
                                f"in this run (baselines.models: {p.cfg.baselines.models})")
        base, folder = found
        out[m] = b.value * base
        how.append(f"{m} <= {out[m]:.4g} ({b.value:g} x {folder}'s {base:.4g} on the default chip)")
    return out, how


def own_chip_budgets(select) -> dict:
    """{metric: RelativeBudget} that best_under also checks on each candidate's own chip; {} otherwise."""
    from crossnas.pipeline.config import RelativeBudget

    if select.rule != "best_under":
        return {}
    return {m: b for m, b in select.budget.items() if isinstance(b, RelativeBudget)}


def within_own_chip(p, records: list[dict], budgets: dict, variants: dict[str, list]) -> list[dict]:
    """The records that also meet each relative budget (own_chip_budgets) against the baseline on the
    record's own chip: the final stage compares a design with the baselines there too, and a chip that
    suits a small network can make the baseline cheaper than on the default chip. The number left out is
    recorded in run.json (`select.own_chip_excluded`); none left is an error naming the best ratio."""
    from crossnas.pipeline.baselines import lowest_cost

    kept, ratios = [], []
    for r in records:
        hw = p.hardware.with_overrides(p.space.to_arch(np.asarray(r["genome"], dtype=np.int64)).hardware)
        ratio = max(float(r["metrics"][m]) / (b.value * lowest_cost(variants[b.relative_to], m, hw)[0])
                    for m, b in budgets.items())
        ratios.append(ratio)
        if ratio <= 1.0:
            kept.append(r)
    p.state.data.setdefault("select", {})["own_chip_excluded"] = len(records) - len(kept)
    if not kept:
        text = ", ".join(f"{m} <= {b.value:g} x {b.relative_to}'s" for m, b in budgets.items())
        best = f"{min(ratios):.3g}" if ratios else "none"
        raise CrossnasError(f"select.budget: no searched design meets {text} on its own chip (the final "
                            f"stage compares them there too); the lowest cost / budget ratio found: {best}")
    return kept


# --- the floor -----------------------------------------------------------------------------------------
def floor_value(p) -> tuple[float | None, str]:
    """The validation-accuracy floor and how it was set."""
    from crossnas.pipeline.baselines import baseline_val_accuracy

    m = p.cfg.select.min_accuracy
    if m is None:
        return None, "no floor"
    if m.relative_to is None:
        return m.value, f"select.min_accuracy {m.value:g}"
    base = baseline_val_accuracy(p.run_dir, m.relative_to)
    if base is None:
        raise CrossnasError(f"select.min_accuracy.relative_to: baseline {m.relative_to!r} was not trained "
                            f"in this run (baselines.models: {p.cfg.baselines.models})")
    return base + m.value, f"{m.relative_to}'s validation accuracy {base:.4f} {m.value:+g}"


def choose_designs(p, result: dict) -> list[tuple[dict, str]]:
    """[(record, reason)]: re-ranked when `select.rerank` > 0, above the floor, picked by the rule."""
    from crossnas.pipeline.select import select_designs

    sel = p.cfg.select
    front, history, objectives = result["pareto"], result["history"], result["objectives"]
    variants = relative_variants(p)
    budget, budget_how = budget_values(p, variants)
    if budget:
        p.state.data.setdefault("select", {}).update({"budget": budget, "budget_how": budget_how})
    own_chip = own_chip_budgets(sel)
    if sel.rerank:
        t0 = time.perf_counter()
        pool = rerank_pool(result, sel)
        pool = within_own_chip(p, pool, own_chip, variants) if own_chip else pool
        front = rerank(p, rule_order(pool, objectives, sel, budget)[:sel.rerank])
        history = front
        p.state.data.setdefault("select", {})["rerank_wall_s"] = time.perf_counter() - t0
    elif own_chip:  # the default chip's front is not the front on each candidate's own chip
        front = history = within_own_chip(p, rerank_pool(result, sel), own_chip, variants)
    floor, how = floor_value(p)
    if floor is not None:
        ok = [r for r in front if r["metrics"]["accuracy_digital"] >= floor]
        if not ok:
            best = max(front, key=lambda r: r["metrics"]["accuracy_digital"])
            acc = best["metrics"]["accuracy_digital"]
            p.state.data.setdefault("select", {}).update({"floor": floor, "best_accuracy": acc, "met": False})
            p.state.save()
            scored = "after re-ranking" if sel.rerank else "as the search scored it"
            raise CrossnasError(
                f"select.min_accuracy: no design reaches the floor {floor:.4f} ({how}); the best validation "
                f"accuracy found is {acc:.4f} ({scored}); everything so far is kept: change select "
                f"(min_accuracy, rerank) and continue with --resume")
        front = ok
        history = [r for r in history if r["metrics"]["accuracy_digital"] >= floor]
    p.state.data.setdefault("select", {}).update({"floor": floor, "met": True, "candidates": len(front)})
    p.state.save()
    chosen = select_designs(front, history or front, objectives, rule=sel.rule, k=sel.k, metric=sel.metric,
                            budget=budget)
    return [(r, f"{why}, re-ranked" if sel.rerank else why) for r, why in chosen]
