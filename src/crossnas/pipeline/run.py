"""`run_pipeline`: supernet -> search -> retrain -> baselines -> final test evaluation -> report.

Every stage writes under the run folder and is skipped once done; an interrupted stage resumes from its
own checkpoints (supernet epochs, search generations, one folder per retrained design or baseline, one
file per final evaluation). Selection uses the validation split; the test split is read only by `final`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Subset

from crossnas import schema
from crossnas.errors import CrossnasError
from crossnas.pipeline.config import (
    RunConfig,
    build_supernet,
    load_run_config,
    load_splits,
    resolve_hardware,
    resolve_space,
)
from crossnas.pipeline.state import STAGES, RunState
from crossnas.progress import task_for
from crossnas.search.accuracy import image_counts
from crossnas.search.store import atomic_write

LOG = "run.log"


@dataclass
class RunResult:
    run_dir: Path
    report_html: Path | None
    final: dict | None
    stages: dict[str, Any]


def describe_network(arch) -> str:
    """One line per design: 'vgg_pool-16 w8a4 | residual-8 w4a8 | skip | head w8'."""
    parts = ["skip" if b.kind == "skip" else f"{b.kind}-{b.width} w{b.wbits}a{b.abits}" for b in arch.blocks]
    return " | ".join([*parts, f"head w{arch.head_bits}"])


def layer_bits(module: torch.nn.Module) -> list[dict]:
    from crossnas.quant import QuantConv2d, QuantLinear

    return [{"layer": n, "weight_bits": m.weight_bits, "act_bits": m.act_bits}
            for n, m in module.named_modules() if isinstance(m, (QuantConv2d, QuantLinear))]


def hardware_summary(hw) -> dict:
    return {"crossbar": f"{hw.crossbar.rows}x{hw.crossbar.cols}", "bits_per_cell": hw.device.bits_per_cell,
            "adc_bits": hw.adc.bits, "adc_range": hw.adc.range, "dac_bits": hw.dac.bits,
            "device": hw.device.kind, "variation": hw.device.variation,
            "stuck_at": [hw.device.stuck_off_rate, hw.device.stuck_on_rate],
            "name": hw.name, "preset": hw.name.split("+")[0]}


def _write_snapshot(path: Path, snapshot: dict) -> None:
    """config.yaml, rewritten only when the config it holds differs (a resume leaves it untouched)."""
    import yaml

    try:
        same = path.is_file() and yaml.safe_load(path.read_text()) == snapshot
    except (yaml.YAMLError, UnicodeDecodeError):  # a snapshot crossnas wrote; never read for results
        same = False
    if not same:
        atomic_write(path, yaml.safe_dump(snapshot, sort_keys=False))


class _Pipeline:
    def __init__(self, cfg: RunConfig, run_dir: Path, *, resume: bool, device: str | None, progress: bool,
                 backend=None, threads: str | int | None = None):
        from crossnas.device import resolve_device

        self.cfg, self.run_dir, self.progress, self.backend = cfg, run_dir, progress, backend
        from crossnas.pipeline.inputs import check_inputs, record_code

        self.device = resolve_device(device or cfg.device)
        # the data is read and user code hashed before anything is written: bad input leaves no folder
        from crossnas.pipeline.preflight import check_before_work, done_stages

        done = done_stages(run_dir, resume)  # run.json checked first: a damaged one is named
        self._splits, code = check_inputs(cfg, run_dir, resume=resume)
        check_before_work(cfg, done, self._splits)
        snapshot = cfg.model_dump(mode="json")
        seeds = {"data": cfg.data.seed, "supernet": cfg.supernet.seed, "search": cfg.search.seed,
                 "retrain": cfg.retrain.seed, "final": cfg.final.seed}
        from crossnas.pipeline.fingerprint import resolved_inputs

        self.state = RunState.open(run_dir, snapshot, seeds, str(self.device), resume=resume,
                                   inputs=resolved_inputs(cfg))
        record_code(self.state, code)
        _write_snapshot(run_dir / "config.yaml", snapshot)
        self._space = self._supernet = None
        self.result: dict | None = None
        self.final: dict | None = None
        self.report_html: Path | None = None
        self.hardware = resolve_hardware(cfg)
        from crossnas.analog.kernels import set_kernel

        set_kernel(cfg.analog.kernel)  # a speed choice: results are the same with every kernel

        from crossnas.threads import apply_for_space

        # before any torch work; recorded in run.json (a resume may change it, like the device)
        choice = apply_for_space(threads or cfg.threads, self.space, self.splits.in_channels,
                                 cfg.supernet.batch_size)
        self.state.data["threads"] = choice.to_dict()
        self.state.save()

    # --- shared inputs, built once when a stage needs them ---------------------------------------
    @property
    def splits(self):
        if self._splits is None:
            self._splits = load_splits(self.cfg)
        return self._splits

    @property
    def input_shape(self) -> tuple[int, int, int]:
        s = self.splits
        return (s.in_channels, s.input_size, s.input_size)

    @property
    def space(self):
        if self._space is None:
            self._space = resolve_space(self.cfg, self.splits.input_size)
        return self._space

    @property
    def supernet(self):
        if self._supernet is None:
            self._supernet = build_supernet(self.cfg, self.splits, self.space)
            if self.state.done("supernet"):  # read only when a later stage needs it
                from crossnas.supernet.train import load_checkpoint

                load_checkpoint(self._supernet, self.checked_checkpoint())
        return self._supernet

    def checked_checkpoint(self) -> Path:
        """The finished supernet's checkpoint, refused when it is not the file that stage wrote."""
        from crossnas.usercode import file_sha256

        ckpt = self.run_dir / "supernet" / "checkpoint.pt"
        want = self.state.data["stages"]["supernet"].get("checkpoint_sha256")
        if not ckpt.is_file():
            raise CrossnasError(f"{ckpt}: not found, but the supernet stage is done (restore it, or start a "
                                "new run folder)")
        if want is not None and file_sha256(ckpt) != want:
            raise CrossnasError(f"{ckpt}: changed since the supernet stage wrote it (sha256 differs) "
                                "(restore it, or start a new run folder)")
        return ckpt

    def supernet_inputs(self) -> dict:
        return {"supernet_checkpoint": self.state.data["stages"]["supernet"].get("checkpoint_sha256")}

    def train_loader(self, seed: int, batch_size: int = 128) -> DataLoader:
        return DataLoader(self.splits.train, batch_size=batch_size, shuffle=True,
                          generator=torch.Generator().manual_seed(seed))

    # --- stages -----------------------------------------------------------------------------------
    def stage_supernet(self) -> None:
        from crossnas.supernet.train import train_supernet

        out = self.run_dir / "supernet"
        ckpt = out / "checkpoint.pt"
        if self.state.done("supernet"):
            return
        with self.state.stage("supernet") as rec:
            tcfg = self.cfg.supernet.model_copy(update={"device": self.device.type})
            train_supernet(self.supernet, self.splits, tcfg, out, resume=ckpt.exists(),
                           progress=self.progress, augment=self.cfg.augment)
            from crossnas.usercode import file_sha256

            rec["checkpoint_sha256"] = file_sha256(ckpt)
        self.supernet.to("cpu")

    def stage_search(self) -> None:
        out = self.run_dir / "search"
        if not self.state.done("search"):
            from crossnas.search.crosslayer import run_cross_layer_search

            with self.state.stage("search", self.supernet_inputs()):
                run_cross_layer_search(self.space, self.supernet, self.splits, self.hardware, self.cfg.search,
                                       out, resume=(out / "search_checkpoint.json").exists(),
                                       device=str(self.device), progress=self.progress, backend=self.backend)
        self.result = schema.read(out / "pareto.json", schema.ParetoFile, "the search result").model_dump()

    def stage_retrain(self) -> None:
        from crossnas.design import save_design
        from crossnas.pipeline.designs import choose_designs, train_network

        if self.state.done("retrain"):
            return
        # before the stage starts: a floor no design meets stops here, `select` still open to change
        chosen = choose_designs(self, self.result)
        rc = self.cfg.retrain
        with self.state.stage("retrain", self.supernet_inputs()), \
                task_for(True, "retrain", len(chosen) * rc.epochs, "epochs") as bar:
            for i, (rec, reason) in enumerate(chosen):
                ddir = self.run_dir / "designs" / f"design-{i + 1}"
                if (ddir / "design.json").exists():
                    continue
                arch = self.space.to_arch(np.asarray(rec["genome"], dtype=np.int64))
                hw = self.hardware.with_overrides(arch.hardware)
                net, info = train_network(self, arch.network, hw, seed=rc.seed + i, label=f"design-{i + 1}",
                                          progress=bar)
                s = self.splits
                save_design(ddir, net.cpu(), hardware=hw, in_channels=s.in_channels,
                            num_classes=s.num_classes, input_size=s.input_size, network=arch.network,
                            name=f"design-{i + 1}",
                            # val: the search's (re-scored) metrics, as the report labels them; rerank: the
                            # short standalone training's scores the choice used, when re-ranked
                            metrics={"val": rec.get("search_scores") or rec["metrics"], "retrain": info,
                                     "selected_by": reason, "source_key": rec["key"],
                                     "description": describe_network(arch.network),
                                     "rerank": rec.get("rerank")})

    def stage_baselines(self) -> None:
        from crossnas.pipeline.baselines import baseline_epochs, train_baselines

        if not self.state.done("baselines"):
            with self.state.stage("baselines"), task_for(True, "baselines", baseline_epochs(self),
                                                         "epochs") as bar:
                train_baselines(self, bar)

    def test_subset(self) -> tuple[Subset, dict]:
        fc, test = self.cfg.final, self.splits.test
        n = len(test) if fc.test_limit is None else min(fc.test_limit, len(test))
        idx = np.sort(np.random.default_rng(fc.seed).choice(len(test), n, replace=False))
        return Subset(test, idx.tolist()), {"n": int(n), "seed": fc.seed, "of": len(test)}

    def stage_final(self) -> None:
        from crossnas.analog import evaluate_pim
        from crossnas.cost import evaluate_cost
        from crossnas.design import load_design
        from crossnas.network import extract_layers

        path = self.run_dir / "final.json"
        if self.state.done("final"):
            self.final = schema.read(path, schema.FinalResult, "the final evaluation").model_dump()
            return
        from crossnas.pipeline.baselines import final_plan
        from crossnas.pipeline.compare import compare_picked
        from crossnas.pipeline.designs import picked_design
        from crossnas.pipeline.fingerprint import json_sha256

        fc = self.cfg.final
        plan = final_plan(self.run_dir, self.cfg.baselines.models, fc.baselines_on)
        with self.state.stage("final"), task_for(True, "final", len(plan), "designs") as bar:
            subset, info = self.test_subset()
            loader = DataLoader(subset, batch_size=fc.batch_size)
            calib = [b for _, b in zip(range(fc.calib_batches), self.train_loader(fc.seed, fc.batch_size))]
            entries, scored = [], {}
            for name, d, chip in plan:
                cache = self.run_dir / "final" / f"{name}.json"
                chip_hw = None if chip is None else load_design(chip).hardware  # a design's chip
                # a baseline on a chip identical to one it was scored on: the same numbers (every chip
                # draw is seeded), so the entry is copied instead of simulated again
                same = None if chip_hw is None else (str(d), json_sha256(
                    {k: v for k, v in chip_hw.model_dump(mode="json").items() if k != "name"}))
                if cache.exists():
                    try:
                        rec = schema.read(cache, schema.FinalEntry, "one final evaluation").model_dump()
                        entries.append(rec)
                        if same is not None:
                            scored.setdefault(same, rec)
                        bar.advance(1)
                        continue
                    except CrossnasError:  # a derived cache: a damaged one is evaluated again
                        pass
                if same is not None and same in scored:
                    first = scored[same]
                    entry = {**first, "name": name, "chip": chip.name, "wall_s": 0.0,
                             "same_as": first["name"]}
                    entries.append(schema.write(cache, schema.FinalEntry, entry))
                    bar.advance(1)
                    continue
                t0 = time.perf_counter()
                design = load_design(d, code=self.cfg.baselines.models)
                hw = design.hardware if chip_hw is None else chip_hw
                meta = design.meta.get("metrics") or {}
                pim = evaluate_pim(design.module, loader, hw, calib_loader=calib, chips=fc.chips,
                                   fidelity=fc.fidelity, seed=fc.seed, device=str(self.device),
                                   per_image=True)
                cost = evaluate_cost(extract_layers(design.module.cpu(), self.input_shape), hw)
                entry = {"name": name, "kind": "baseline" if d.parent.name == "baselines" else "design",
                         "chip": "default" if chip is None else chip.name,
                         "source_key": meta.get("source_key"), "selected_by": meta.get("selected_by"),
                         "description": meta.get("description", d.name),
                         "design_dir": str(d.relative_to(self.run_dir)), "bits": layer_bits(design.module),
                         "hardware": hardware_summary(hw), "val": meta.get("val"),
                         "retrain": meta.get("retrain"),
                         "test": {"accuracy_digital": float(pim.accuracy_digital),
                                  "accuracy_pim": float(pim.accuracy_pim),
                                  "accuracy_pim_std": float(pim.accuracy_pim_std),
                                  "per_chip": [float(a) for a in pim.per_chip],
                                  **image_counts(pim, info["n"]), "correct_chips": pim.correct_chips},
                         "cost": cost.to_dict(), "wall_s": time.perf_counter() - t0}
                entries.append(schema.write(cache, schema.FinalEntry, entry))
                if same is not None:
                    scored.setdefault(same, entries[-1])
                bar.advance(1)
                bar.line(f"{name}: PIM {pim.accuracy_pim:.4f} +- {pim.accuracy_pim_std:.4f}, digital "
                         f"{pim.accuracy_digital:.4f}, EDP {cost.totals['edp_js']:.3g} J*s")
            picked = picked_design(entries)
            final = {"split": "test", "test_subset": info, "chips": fc.chips, "fidelity": fc.fidelity,
                     "dataset": self.cfg.data.name, "entries": entries, "picked": picked,
                     "comparisons": compare_picked(entries, picked, fc.chips)}
            final = schema.write(path, schema.FinalResult, final)
        self.final = final

    def stage_report(self) -> None:
        from crossnas.pipeline.report import write_report

        if not self.state.done("report"):
            with self.state.stage("report"):
                write_report(self.run_dir)
        self.report_html = self.run_dir / "report.html"


def run_pipeline(config: str | Path | dict | RunConfig, out_dir: str | Path, *, resume: bool = False,
                 device: str | None = None, progress: bool = True, stop_after: str | None = None,
                 backend=None, log_format: str = "auto", threads: str | int | None = None,
                 force: bool = False) -> RunResult:
    """Run (or resume) every stage; `stop_after` ends after the named stage (to test resumption).
    `force` replaces a previous run in `out_dir` (only the files crossnas wrote, see crossnas.runfolder).

    Progress (`crossnas.progress`): `log_format` auto (rich bars on a terminal, else plain lines), rich or
    plain; `progress=False` prints none. Headers and unit lines also go to `out_dir/run.log`.
    """
    from crossnas.pipeline.progress_log import announce, stage_header
    from crossnas.progress import Reporter, use
    from crossnas.runfolder import claim

    cfg = config if isinstance(config, RunConfig) else load_run_config(config)
    if stop_after is not None and stop_after not in STAGES:
        raise ValueError(f"stop_after: expected one of {STAGES}, got {stop_after!r}")
    with claim(out_dir, "run", resume=resume, force=force) as folder:
        p = _Pipeline(cfg, Path(out_dir), resume=resume, device=device, progress=True, backend=backend,
                      threads=threads)
        with use(Reporter(log_format if progress else "off", log_path=Path(out_dir) / LOG)) as rep:
            announce(rep, p)
            for name in STAGES:
                stage_header(rep, p, name)
                getattr(p, f"stage_{name}")()
                folder.record()
                if name == stop_after:
                    break
    return RunResult(run_dir=Path(out_dir), report_html=p.report_html, final=p.final,
                     stages=p.state.data["stages"])
