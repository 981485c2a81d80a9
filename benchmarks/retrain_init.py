"""Retraining from the supernet's weights or from scratch: the designs of a finished run, trained twice
with the run's own recipe (retrain section: epochs as a maximum, patience, lr, noise-aware step).

    PYTHONPATH=src .venv/bin/python benchmarks/retrain_init.py RUN_DIR --json out.json

Per design and init: epochs run, best epoch, best validation accuracy and the per-epoch curve. The run
folder is only read.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from crossnas.device import resolve_device
from crossnas.pipeline.config import (
    build_supernet,
    load_run_config,
    load_splits,
    resolve_hardware,
    resolve_space,
)
from crossnas.pipeline.designs import train_network
from crossnas.supernet.train import load_checkpoint


class _Run:
    """What `train_network` reads of a pipeline, rebuilt from a run folder."""

    def __init__(self, run_dir: Path, init: str):
        cfg = load_run_config(run_dir / "config.yaml")
        self.cfg = cfg.model_copy(update={"retrain": cfg.retrain.model_copy(update={"init": init})})
        self.splits = load_splits(cfg)
        self.space = resolve_space(cfg, self.splits.input_size)
        self.supernet = build_supernet(cfg, self.splits, self.space)
        load_checkpoint(self.supernet, run_dir / "supernet" / "checkpoint.pt")
        self.hardware = resolve_hardware(cfg)
        self.device, self.progress = resolve_device("cpu"), False

    def train_loader(self, seed: int, batch_size: int = 128) -> DataLoader:
        return DataLoader(self.splits.train, batch_size=batch_size, shuffle=True,
                          generator=torch.Generator().manual_seed(seed))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    torch.set_num_threads(1)
    rows = []
    for init in ("supernet", "scratch"):
        run = _Run(a.run_dir, init)
        for d in sorted((a.run_dir / "designs").glob("design-*")):
            meta = json.loads((d / "design.json").read_text())
            key = meta["metrics"]["source_key"]
            genome = np.array([int(v) for v in key.split(",")], dtype=np.int64)
            arch = run.space.to_arch(genome)
            i = int(d.name.split("-")[1]) - 1
            t0 = time.perf_counter()
            _, info = train_network(run, arch.network, run.hardware.with_overrides(arch.hardware),
                                    seed=run.cfg.retrain.seed + i, label=d.name)
            rows.append({"design": d.name, "init": init, "epochs": info["epochs"],
                         "best_epoch": info["best_epoch"],
                         "val_before": info["val_acc_before"], "val_best": info["val_acc_after"],
                         "val_curve": info["val_curve"], "wall_s": time.perf_counter() - t0})
    print(f"{'design':<10}{'init':<10}{'epochs':>7}{'best ep':>8}{'val before':>11}{'val best':>9}{'s':>7}")
    for r in rows:
        print(f"{r['design']:<10}{r['init']:<10}{r['epochs']:>7}{r['best_epoch']:>8}{r['val_before']:>11.4f}"
              f"{r['val_best']:>9.4f}{r['wall_s']:>7.0f}")
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
