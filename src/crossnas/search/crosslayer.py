"""Cross-layer evaluator: score decoded architectures with the supernet, the simulator and the cost model.

For each candidate: extract the subnet at its bits, recalibrate BN on training images (seeded), measure
PIM accuracy on the validation split (never the test split) with the analog simulator, and cost the
same module on the candidate's hardware. Results are cached by canonical genome by the search engine.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Subset

from crossnas import schema
from crossnas.errors import CrossnasError
from crossnas.hardware import HardwareConfig
from crossnas.network import extract_layers
from crossnas.progress import task_for
from crossnas.search.accuracy import accuracy_metrics
from crossnas.search.result import SearchResult


@dataclass
class CrossLayerEvaluator:
    """Callable `evaluate(list of decoded archs) -> list of metric dicts` for `crossnas.search.search`."""

    space: Any
    supernet: torch.nn.Module
    train_set: Any
    val_set: Any
    hardware: HardwareConfig
    input_shape: tuple[int, int, int]
    fidelity: str = "fast"
    val_limit: int | None = 1000
    bn_batches: int = 10
    calib_batches: int = 2
    batch_size: int = 128
    chips: int = 1
    seed: int = 0
    device: str = "cpu"
    _loaders: dict = field(default_factory=dict, init=False, repr=False)

    def _loader(self, which: str) -> DataLoader:
        if which not in self._loaders:
            ds = self.train_set if which == "train" else self.val_set
            if which == "val" and self.val_limit is not None and len(ds) > self.val_limit:
                ds = Subset(ds, range(self.val_limit))
            gen = torch.Generator().manual_seed(self.seed)
            self._loaders[which] = DataLoader(ds, batch_size=self.batch_size, shuffle=which == "train",
                                              generator=gen)
        loader = self._loaders[which]
        if which == "train":
            # the same batches for every candidate, whatever this process evaluated before: the local
            # backend, a process pool and long-lived Ray actors then score a candidate identically
            loader.generator.manual_seed(self.seed)
        return loader

    def build(self, decoded: dict[str, Any]):
        """The candidate's module (BN recalibrated) and hardware config."""
        from crossnas.supernet import recalibrate_bn

        genome = self.space.encode(decoded)
        arch = self.space.to_arch(genome)
        net = self.supernet.extract(arch.network)
        recalibrate_bn(net, self._loader("train"), n_batches=self.bn_batches, seed=self.seed)
        net.eval()
        return net, self.hardware.with_overrides(arch.hardware)

    def __call__(self, archs: list[dict[str, Any]]) -> list[dict[str, float]]:
        from crossnas.analog import evaluate_pim
        from crossnas.cost import evaluate_cost

        out = []
        for decoded in archs:
            net, hw = self.build(decoded)
            costs = evaluate_cost(extract_layers(net, self.input_shape), hw).totals
            val = self._loader("val")
            acc = evaluate_pim(net, val, hw, calib_loader=self._calib(),
                               chips=self.chips, fidelity=self.fidelity, seed=self.seed, device=self.device)
            n = len(val.dataset)  # accuracies as image counts too: equal ones compare exactly
            out.append({**accuracy_metrics("accuracy_pim", acc.per_chip, n),
                        "accuracy_pim_std": float(acc.accuracy_pim_std),
                        **accuracy_metrics("accuracy_digital", [acc.accuracy_digital], n),
                        **{k: float(v) for k, v in costs.items()}})
        return out

    def cheap(self, archs: list[dict[str, Any]]) -> list[dict[str, float]]:
        """The cost model's totals alone (no BN recalibration, no simulation): the metrics a
        surrogate-assisted search computes exactly for its whole pool, outside the budget."""
        from crossnas.cost import evaluate_cost

        out = []
        for decoded in archs:
            arch = self.space.to_arch(self.space.encode(decoded))
            net = self.supernet.extract(arch.network).eval()
            totals = evaluate_cost(extract_layers(net, self.input_shape),
                                   self.hardware.with_overrides(arch.hardware)).totals
            out.append({k: float(v) for k, v in totals.items()})
        return out

    def _calib(self):
        loader = self._loader("train")
        return [b for _, b in zip(range(self.calib_batches), loader)]


# --- the full cross-layer search: joint or two-stage, then exact re-evaluation of the front --------------
CHECKPOINT = "search_checkpoint.json"
LOG = "evaluations.jsonl"
FRONT_CACHE = "front_exact.json"


def make_evaluator(space: Any, supernet: torch.nn.Module, splits: Any, hardware: HardwareConfig, cfg: Any, *,
                   fidelity: str | None = None, chips: int | None = None,
                   device: str = "cpu") -> CrossLayerEvaluator:
    """The evaluator a `SearchConfig` describes: BN recalibration and calibration on the train split,
    accuracy on the validation split (the test split is never touched during selection)."""
    shape = (splits.in_channels, splits.input_size, splits.input_size)
    return CrossLayerEvaluator(space, supernet, splits.train, splits.val, hardware, shape,
                               fidelity=fidelity or cfg.fidelity, val_limit=cfg.val_limit,
                               bn_batches=cfg.bn_batches, calib_batches=cfg.calib_batches,
                               batch_size=cfg.batch_size, chips=chips or cfg.chips, seed=cfg.seed,
                               device=str(device))


def stage1_genome(space: Any, hardware: HardwareConfig) -> np.ndarray:
    """The genome whose bits and circuit genes stage 1 keeps fixed (network genes are searched).

    Bits genes (weight/activation bits per slot) take their largest choice, the closest the QAT supernet
    comes to the full-precision network ranking of the published stage 1. Circuit genes and per-slot ADC
    bits take the hardware config's value when it is one of the gene's choices, else the gene's first
    choice (the space's default).
    """
    from crossnas.search.subspace import gene_groups
    from crossnas.space.crosslayer import HW_GENES

    overlay_key = {label: keys[0] for label, keys in HW_GENES.values()}
    g = np.zeros(space.n_genes, dtype=np.int64)
    groups = gene_groups(space)
    for i in groups["bits"] + groups["circuit"]:
        gene = space.genes[i]
        if gene.label.endswith(".adc_bits"):
            current: Any = hardware.adc.bits
        elif gene.label in overlay_key:
            current = _dotted(hardware, overlay_key[gene.label])
        else:  # weight/activation bits
            g[i] = int(np.argmax(gene.choices))
            continue
        g[i] = list(gene.choices).index(current) if current in gene.choices else 0
    return g


def _dotted(obj: Any, key: str) -> Any:
    for part in key.split("."):
        obj = getattr(obj, part)
    return obj


def pick_winner(records: list[dict], cfg: Any, bounds: dict | None = None) -> dict:
    """Stage 1's winner: the feasible record with the best scalar fitness, `cfg.fitness` or the paper's
    stage-1 preset when unset, normalised by `bounds` (the run's: config or the space's own range; published
    when None); ties go to the earlier evaluation. Over 5% of the records outside the bounds is an error."""
    from crossnas.search.fitness import check_bounds, make_fitness
    from crossnas.search.problem import is_feasible

    cons = cfg.search_kwargs()["constraints"]
    feas = [r for r in records if is_feasible(r["metrics"], cons)]
    if not feas:
        raise CrossnasError("two-stage search: no stage-1 candidate meets config.search.constraints; "
                            "relax them or raise config.search.budget")
    fit = make_fitness(cfg.fitness or "paper-stage1", dict(cfg.objectives), bounds)
    if hasattr(fit, "bounds"):
        check_bounds([r["metrics"] for r in feas], fit.bounds)
    return max(feas, key=lambda r: fit(r["metrics"]))  # max keeps the first of equals


def run_fitness_bounds(space: Any, supernet: Any, hardware: HardwareConfig, input_shape, cfg: Any
                       ) -> dict | None:
    """The paper fitness's bounds for this run: `cfg.fitness_bounds`, else the space's own range through
    the cost model (`search.fitness_bounds.space_bounds`); None when no paper fitness is used."""
    from crossnas.search.fitness import PRESETS

    if not (cfg.fitness in PRESETS or (cfg.mode == "two-stage" and cfg.fitness is None)):
        return None
    if cfg.fitness_bounds:
        given = {k: list(v) for k, v in cfg.fitness_bounds.items()}
        return {**given, "source": "config.search.fitness_bounds"}
    from crossnas.search.fitness_bounds import space_bounds

    return space_bounds(space, hardware, tuple(input_shape), seed=cfg.seed,
                        build=getattr(supernet, "extract", None))


def _bounds_kw(cfg: Any, bounds: dict | None) -> dict:
    """The evolution strategy's fitness_bounds keyword (other strategies take no scalar fitness)."""
    if bounds is None or cfg.strategy != "evolution":
        return {}
    return {"fitness_bounds": {k: v for k, v in bounds.items() if k != "source"}}


def _full_records(records: list[dict], sub: Any, stage: int) -> list[dict]:
    """Sub-space records re-keyed by the parent space's canonical genome."""
    out = []
    for r in records:
        full = sub.full_canonical(np.asarray(r["genome"], dtype=np.int64))
        out.append({**r, "genome": [int(v) for v in full], "key": sub.parent.key(full), "stage": stage})
    return out


def score_context(evaluator: CrossLayerEvaluator) -> dict:
    """What an evaluator's scores depend on besides the genome: the hardware (every field, so a changed
    hardware file is seen), the evaluator's settings and the supernet's weights (sha256)."""
    from crossnas.safeload import content_sha256

    ev = {k: getattr(evaluator, k) for k in ("fidelity", "val_limit", "bn_batches", "calib_batches",
                                             "batch_size", "chips", "seed")}
    return {"hardware": evaluator.hardware.model_dump(mode="json"), "evaluator": ev,
            "supernet_sha256": content_sha256(evaluator.supernet.state_dict())}


def _run_search(space: Any, evaluator: Any, cfg: Any, budget: int, folder: Path, backend: Any,
                progress: bool, **override: Any) -> SearchResult:
    from crossnas.search.engine import search

    return search(space, evaluator, budget=budget, checkpoint=folder / CHECKPOINT, backend=backend,
                  progress=progress, log_path=folder / LOG, context=score_context(evaluator),
                  **{**cfg.search_kwargs(), **override})


def _reevaluate_front(result: SearchResult, evaluator: Any, cfg: Any, backend: Any, cache_path: Path,
                      progress: bool = False) -> SearchResult:
    """Score the Pareto set again at final fidelity; keep the in-loop metrics as `search_metrics`."""
    from crossnas.search.result import pareto_records

    meta = {"fidelity": cfg.final_fidelity, "chips": cfg.final_chips, "val_limit": cfg.val_limit,
            "seed": cfg.seed, "bn_batches": cfg.bn_batches, "calib_batches": cfg.calib_batches,
            "batch_size": cfg.batch_size}
    key = {**meta, **score_context(evaluator)}
    cache: dict[str, dict] = {}
    if cache_path.exists():
        try:
            saved = schema.read(cache_path, schema.FrontCache, "the front's re-scored metrics").model_dump()
        except CrossnasError:  # a derived cache: a damaged one is recomputed
            saved = {}
        if saved.get("meta") == key:
            cache = saved["metrics"]  # other hardware, fidelity or weights: the scores do not apply
    todo = [r for r in result.pareto if r["key"] not in cache]
    step = max(1, int(cfg.workers))
    with task_for(progress, "re-score front", len(todo), "designs") as bar:
        for i in range(0, len(todo), step):  # saved after every chunk so a crash loses at most one chunk
            chunk = todo[i:i + step]
            for r, m in zip(chunk, backend.map(evaluator, [r["arch"] for r in chunk])):
                cache[r["key"]] = m
            schema.write(cache_path, schema.FrontCache, {"meta": key, "metrics": cache})
            if bar is not None:
                bar.advance(len(chunk))
                accs = ", ".join(f"{cache[r['key']].get('accuracy_pim', float('nan')):.4f}" for r in chunk)
                bar.line(f"{cfg.final_fidelity} fidelity, {cfg.final_chips} chips: PIM accuracy {accs}")
    front = [{**r, "search_metrics": r["metrics"], "metrics": cache[r["key"]]} for r in result.pareto]
    kept = pareto_records(front, result.objectives, result.constraints)
    kept_keys = {r["key"] for r in kept}
    dropped = [r["key"] for r in front if r["key"] not in kept_keys]
    final = {**meta, "reevaluated": len(front), "dropped": dropped}
    return replace(result, pareto=kept, meta={**result.meta, "final": final})


def run_cross_layer_search(space: Any, supernet: torch.nn.Module, splits: Any, hardware: HardwareConfig,
                           cfg: Any, out_dir: str | Path, *, resume: bool = False, device: str = "cpu",
                           progress: bool = True, backend: Any = None) -> SearchResult:
    """Search `space` with the supernet as `cfg` (a `SearchConfig`) says, re-evaluate the Pareto set at
    `cfg.final_fidelity` on `cfg.final_chips` chips, and write pareto.json/csv, history.csv, pareto.png and
    hypervolume.png to `out_dir`.

    `cfg.mode == "joint"` searches every gene at once (checkpoint `out_dir/search_checkpoint.json`).
    `"two-stage"` is the published flow: stage 1 (`out_dir/stage1/`, `cfg.stage1_fraction` of the budget)
    searches the network genes with bits and circuit genes fixed by `stage1_genome`; stage 2
    (`out_dir/stage2/`, the rest of the budget) searches bits and circuit genes for stage 1's winner
    (`pick_winner`); with `fitness: paper-stage1` stage 2 uses `paper-stage2`, as published. The result
    is stage 2's front; its history holds both stages (`stage` 1 or 2) and `meta["stage1"]` the winner.
    Records carry full-space genomes and keys in both modes.
    """
    from crossnas.search.backends import make_backend
    from crossnas.search.config import SearchConfig
    from crossnas.search.plots import plot_hypervolume, plot_pareto
    from crossnas.search.subspace import SubSpace, gene_groups

    if not isinstance(cfg, SearchConfig):
        from crossnas.search.config import load_search_config

        cfg = load_search_config(cfg)
    out = Path(out_dir)
    started = [p for p in (out / CHECKPOINT, out / "stage1" / CHECKPOINT) if p.exists()]
    if started and not resume:
        raise CrossnasError(f"--out: {started[0]} exists; pass --resume to continue it or choose another "
                            "folder")
    out.mkdir(parents=True, exist_ok=True)
    evaluator = make_evaluator(space, supernet, splits, hardware, cfg, device=device)
    bounds = run_fitness_bounds(space, supernet, hardware, evaluator.input_shape, cfg)
    own_backend = backend is None
    backend = backend or make_backend(cfg.backend, cfg.workers, cfg.address)
    try:
        if cfg.mode == "joint":
            result = _run_search(space, evaluator, cfg, cfg.budget, out, backend, progress,
                                 **_bounds_kw(cfg, bounds))
        else:
            groups = gene_groups(space)
            if not groups["network"] or not groups["bits"] + groups["circuit"]:
                raise CrossnasError("config.search.mode: two-stage needs network genes and bits or circuit "
                                    "genes in the space")
            b1 = min(cfg.budget - 1, max(1, round(cfg.budget * cfg.stage1_fraction)))
            if b1 < 1:
                raise CrossnasError("config.search.budget: expected >= 2 in two-stage mode")
            sub1 = SubSpace(space, groups["network"], stage1_genome(space, hardware))
            r1 = _run_search(sub1, evaluator, cfg, b1, out / "stage1", backend, progress,
                             **_bounds_kw(cfg, bounds))
            hist1 = _full_records(r1.history, sub1, 1)
            winner = pick_winner(hist1, cfg, bounds)
            sub2 = SubSpace(space, groups["bits"] + groups["circuit"], winner["genome"])
            # the published flow scores stage 2 with its own weights (0.99 acc - 0.01 L E)
            fit2 = "paper-stage2" if cfg.fitness == "paper-stage1" else cfg.fitness
            r2 = _run_search(sub2, evaluator, cfg, cfg.budget - b1, out / "stage2", backend, progress,
                             fitness=fit2, **_bounds_kw(cfg, bounds))
            hist2 = _full_records(r2.history, sub2, 2)
            stage1 = {"budget": b1, "n_evaluations": r1.n_evaluations, "generations": r1.generations,
                      "plan": r1.meta.get("plan"),
                      "hypervolume": r1.hypervolume, "winner": winner["key"], "winner_arch": winner["arch"],
                      "winner_metrics": winner["metrics"], "fixed_genome": [int(v) for v in sub1.fixed]}
            result = replace(r2, pareto=_full_records(r2.pareto, sub2, 2), history=hist1 + hist2,
                             n_evaluations=r1.n_evaluations + r2.n_evaluations,
                             meta={**r2.meta, "mode": "two-stage", "budget": cfg.budget, "stage1": stage1})
        final_ev = make_evaluator(space, supernet, splits, hardware, cfg, fidelity=cfg.final_fidelity,
                                  chips=cfg.final_chips, device=device)
        result = _reevaluate_front(result, final_ev, cfg, backend, out / FRONT_CACHE, progress)
    finally:
        if own_backend:
            backend.close()
    result.meta.setdefault("mode", cfg.mode)
    if bounds is not None:
        from crossnas.search.fitness import clipped_share, log

        share = clipped_share([r["metrics"] for r in result.history], bounds)
        log.info("fitness bounds %s: %.1f%% of %d evaluations clipped", bounds, 100 * share,
                 len(result.history))
        result.meta["fitness_bounds"] = {**bounds, "clipped_share": share}
    result.meta["config"] = cfg.model_dump()
    result.to_json(out / "pareto.json")
    result.to_csv(out / "pareto.csv", which="pareto")
    result.to_csv(out / "history.csv", which="history")
    plot_pareto(result, out / "pareto.png")
    plot_hypervolume(result, out / "hypervolume.png")
    return result
