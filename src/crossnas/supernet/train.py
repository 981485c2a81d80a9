"""Supernet training: uniform single-path sampling per step, SGD + cosine, exact resume, JSONL metrics.

Resume is bit-exact: the checkpoint holds weights, optimizer, scheduler, the epoch and every RNG that
the loop draws from (torch, numpy, python, the path sampler); the data order of epoch e comes from a
generator seeded with (seed, e), so it does not depend on what ran before.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch.utils.data import DataLoader, Dataset, TensorDataset

from crossnas.device import resolve_device
from crossnas.errors import CrossnasError, short
from crossnas.progress import task_for
from crossnas.safeload import content_sha256, expect_dict, load_tensors
from crossnas.supernet.bn import recalibrate_bn

CHECKPOINT = "checkpoint.pt"
METRICS = "metrics.jsonl"
# The network form the supernet's slots were trained on. 2: canonical networks (skips last, so slot i holds
# the i-th non-skip block); 1 (no field): skips anywhere. A form-1 checkpoint's weights mean other paths.
FORM = 2


class SupernetTrainConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    epochs: int = Field(10, ge=1)
    """Training epochs (one uniformly sampled path per batch)."""
    batch_size: int = Field(128, ge=1)
    """Images per training batch."""
    lr: float = Field(0.05, gt=0)
    """Initial SGD learning rate."""
    momentum: float = Field(0.9, ge=0, lt=1)
    """SGD momentum."""
    weight_decay: float = Field(5e-4, ge=0)
    """SGD L2 weight decay."""
    schedule: Literal["cosine", "constant"] = "cosine"
    """Learning-rate schedule over all steps: cosine decay or constant."""
    seed: int = 0
    """Seed of weights, data order and path sampling (exact resume)."""
    noise_sigma: float = Field(0.0, ge=0)
    """Relative weight noise injected during training (0 = off)."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """Training device (crossnas run sets it from the top-level device)."""
    num_workers: int = Field(0, ge=0)
    """DataLoader worker processes."""
    bn_recal_batches: int = Field(0, ge=0)
    """BN recalibration batches before each validation subnet is scored (0: score with the shared
    statistics)."""
    val_subnets: int = Field(3, ge=0)
    """Sampled subnets scored on validation after each epoch."""
    grad_clip: float = Field(5.0, ge=0)  # max gradient norm per step; 0 disables
    amp: bool = False  # bfloat16 autocast for the training forward pass on CUDA; no effect on CPU
    sampling: Literal["uniform", "sandwich"] = "uniform"
    """Paths per step: `uniform`, one sampled path; `sandwich`, the largest and the smallest path plus
    `sandwich_random` sampled ones, gradients summed into one update (BigNAS / OFA's sandwich rule).
    Uniform is the default: on digits (benchmarks/ranking.py) the sandwich ranked no better, at equal
    steps or at equal forward-backward passes, for 2 + sandwich_random times the work per step."""
    sandwich_random: int = Field(2, ge=0)
    """Sandwich only: sampled paths per step besides the largest and the smallest."""
    distill: bool = True
    """Sandwich only: every path but the largest learns the largest path's soft predictions (in-place
    distillation, KL to its detached softmax) instead of the labels."""


def _as_dataset(obj: Any) -> Dataset:
    if isinstance(obj, Dataset):
        return obj
    if isinstance(obj, (tuple, list)) and len(obj) == 2:
        x, y = (torch.as_tensor(np.asarray(v)) for v in obj)
        return TensorDataset(x.float(), y.long())
    for xa, ya in (("x", "y"), ("X", "y"), ("images", "labels"), ("data", "targets")):
        if hasattr(obj, xa) and hasattr(obj, ya):
            return _as_dataset((getattr(obj, xa), getattr(obj, ya)))
    raise CrossnasError(f"data: cannot use {type(obj).__name__} as a dataset (expected Dataset or (x, y))")


def _loaders(data: Any, cfg: SupernetTrainConfig):
    """(train_dataset_or_loader, val_loader_or_None) from DataSplits, (train, val) loaders or datasets."""
    if hasattr(data, "train"):
        train, val = data.train, getattr(data, "val", None)
    elif isinstance(data, (tuple, list)) and len(data) == 2:
        train, val = data
    else:
        raise CrossnasError("data: expected DataSplits (train/val) or a (train, val) pair")
    if not isinstance(train, DataLoader):
        train = _as_dataset(train)
    if val is not None and not isinstance(val, DataLoader):
        val = DataLoader(_as_dataset(val), batch_size=cfg.batch_size, shuffle=False)
    return train, val


def _epoch_loader(train, cfg: SupernetTrainConfig, epoch: int, salt: int = 0):
    if isinstance(train, DataLoader):
        return train
    g = torch.Generator().manual_seed(abs(cfg.seed) * 1_000_003 + 10_007 * salt + epoch)
    return DataLoader(train, batch_size=cfg.batch_size, shuffle=True, generator=g,
                      num_workers=cfg.num_workers)


def _rng_state(sampler: np.random.Generator) -> dict:
    """Every RNG as tensors and plain data, so the checkpoint loads with weights_only=True."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    st = {"torch": torch.get_rng_state(),
          "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                    "has_gauss": int(has_gauss), "gauss": float(gauss)},
          "python": random.getstate(), "sampler": sampler.bit_generator.state}
    if torch.cuda.is_available():
        st["cuda"] = torch.cuda.get_rng_state_all()
    return st


def _set_rng_state(st: dict, sampler: np.random.Generator) -> None:
    torch.set_rng_state(st["torch"])
    n = st["numpy"]
    keys = n["keys"].numpy().astype(np.uint32)
    np.random.set_state((n["kind"], keys, n["pos"], n["has_gauss"], n["gauss"]))
    random.setstate(st["python"])
    sampler.bit_generator.state = st["sampler"]
    if "cuda" in st and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(st["cuda"])


def _atomic_save(obj: Any, path: Path) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save({**obj, "checksum": content_sha256(obj)}, tmp)
    os.replace(tmp, path)


@torch.no_grad()
def top1_accuracy(model, loader, dev, arch=None) -> float:
    """Top-1 accuracy in eval mode (the model is left in eval mode); `arch` selects a supernet path."""
    model.eval()
    correct = total = 0
    for x, y in loader:
        x, y = x.to(dev), y.to(dev)
        out = model(x) if arch is None else model(x, arch)
        correct += int((out.argmax(1) == y).sum())
        total += len(y)
    return correct / max(total, 1)


def train_supernet(supernet, data: Any, config: SupernetTrainConfig | dict, out_dir: str | Path,
                   resume: bool = False, progress: bool = True, stop_after: int | None = None,
                   augment=None) -> list[dict]:
    """Train in place; returns the metrics of the epochs run now (also appended to metrics.jsonl).

    `stop_after=k` stops after epoch k as an interruption would (the schedule still spans
    `config.epochs`), so a later `resume=True` run ends on the same weights as one uninterrupted run.
    `augment` (`crossnas.data.augment.AugmentConfig`) transforms the training batches only.
    """
    from crossnas.data.augment import augment_batch, epoch_generator

    cfg = config if isinstance(config, SupernetTrainConfig) else SupernetTrainConfig(**config)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    dev = resolve_device(cfg.device)
    supernet.to(dev)
    supernet.noise_sigma = cfg.noise_sigma
    train, val = _loaders(data, cfg)

    opt = torch.optim.SGD(supernet.parameters(), lr=cfg.lr, momentum=cfg.momentum,
                          weight_decay=cfg.weight_decay)
    steps_per_epoch = len(_epoch_loader(train, cfg, 0))
    total = cfg.epochs * steps_per_epoch
    if cfg.schedule == "cosine":
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(total, 1))
    else:
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)
    sampler = np.random.default_rng(cfg.seed)
    # bf16 needs no loss scaling; CPU runs ignore the flag so they stay bit-identical to amp=False
    use_amp = cfg.amp and dev.type == "cuda"
    start = 0
    ckpt_path = out / CHECKPOINT
    if resume:
        if not ckpt_path.exists():
            raise CrossnasError(f"resume: no checkpoint at {ckpt_path}")
        ck = read_checkpoint(ckpt_path, map_location=dev)
        _check_form(ck, ckpt_path)
        try:
            _load_weights(supernet, ck["model"], ckpt_path)
            opt.load_state_dict(ck["optimizer"])
            sched.load_state_dict(ck["scheduler"])
            _set_rng_state(ck["rng"], sampler)
            start = int(ck["epoch"])
        except (KeyError, TypeError, ValueError, IndexError) as e:
            raise CrossnasError(f"{ckpt_path}: damaged training state ({e.__class__.__name__}: "
                                f"{short(str(e))}) (train again with --force)") from None
    else:
        torch.manual_seed(cfg.seed)
        np.random.seed(cfg.seed)
        random.seed(cfg.seed)

    history = []
    end = cfg.epochs if stop_after is None else min(cfg.epochs, stop_after)
    # one task over every step of the stage, so its estimate covers the whole training
    with task_for(progress, "supernet", cfg.epochs * steps_per_epoch, "steps",
                  start * steps_per_epoch) as bar:
        for epoch in range(start, end):
            supernet.train()
            loader = _epoch_loader(train, cfg, epoch)
            aug_gen = epoch_generator(cfg.seed, epoch) if augment is not None and augment.active else None
            loss_sum = correct = seen = 0.0
            for x, y in loader:
                x, y = x.to(dev), y.to(dev)
                if aug_gen is not None:
                    x = augment_batch(x, augment, aug_gen)
                opt.zero_grad(set_to_none=True)
                teacher = None
                for k, arch in enumerate(_step_paths(supernet, sampler, cfg)):
                    with torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=use_amp):
                        pred = supernet(x, arch)
                        loss = (F.cross_entropy(pred, y) if teacher is None else F.kl_div(
                            F.log_softmax(pred, 1), F.softmax(teacher, 1), reduction="batchmean"))
                    if not torch.isfinite(loss):
                        kept = (f"last good checkpoint kept at {ckpt_path}" if ckpt_path.exists()
                                else "no checkpoint written yet")
                        raise CrossnasError(
                            f"supernet training diverged: loss is {loss.item()} at epoch {epoch + 1} (arch "
                            f"{arch.to_dict()}); {kept}; lower lr or check the data")
                    loss.backward()
                    if k == 0:  # the metrics follow the first path (the largest one in a sandwich)
                        logits, first_loss = pred.detach(), loss.detach()
                        if cfg.sampling == "sandwich" and cfg.distill:
                            teacher = logits.float()
                loss = first_loss
                if cfg.grad_clip:
                    torch.nn.utils.clip_grad_norm_(supernet.parameters(), cfg.grad_clip)
                opt.step()
                sched.step()
                loss_sum += loss.item() * len(y)
                correct += float((logits.argmax(1) == y).sum())
                seen += len(y)
                if bar is not None:
                    bar.advance(1, epoch=f"{epoch + 1}/{cfg.epochs}", loss=loss_sum / seen,
                                acc=correct / seen)
            rec = {"epoch": epoch + 1, "train_loss": loss_sum / max(seen, 1),
                   "train_acc": correct / max(seen, 1), "lr": opt.param_groups[0]["lr"]}
            if val is not None and cfg.val_subnets:
                rec["val"] = _val_subnets(supernet, train, val, cfg, epoch, dev)
                rec["val_acc_mean"] = float(np.mean([v["acc"] for v in rec["val"]]))
            _atomic_save({"model": supernet.state_dict(), "optimizer": opt.state_dict(), "form": FORM,
                          "scheduler": sched.state_dict(), "epoch": epoch + 1, "rng": _rng_state(sampler),
                          "config": cfg.model_dump()}, ckpt_path)
            with open(out / METRICS, "a") as f:
                f.write(json.dumps(rec) + "\n")
            history.append(rec)
            if bar is not None:
                val_txt = f", val acc {rec['val_acc_mean']:.4f}" if "val_acc_mean" in rec else ""
                bar.line(f"epoch {epoch + 1}/{cfg.epochs} loss {rec['train_loss']:.4f} train acc "
                         f"{rec['train_acc']:.4f}{val_txt}")
    return history


def _step_paths(supernet, sampler: np.random.Generator, cfg: SupernetTrainConfig) -> list:
    """The paths one step trains, the largest first in a sandwich (it teaches the others)."""
    if cfg.sampling == "uniform":
        return [supernet.sample_arch(sampler)]
    return [supernet.extreme_arch("largest"), supernet.extreme_arch("smallest"),
            *(supernet.sample_arch(sampler) for _ in range(cfg.sandwich_random))]


def _check_form(ck: dict, path: Path) -> None:
    if ck.get("form", 1) != FORM:
        raise CrossnasError(f"supernet checkpoint {path}: network form {ck.get('form', 1)} (skips anywhere), "
                            f"this crossnas trains form {FORM} (canonical networks, skips last); its slots "
                            "hold other blocks' weights: train the supernet again")


def _val_subnets(supernet, train, val, cfg: SupernetTrainConfig, epoch: int, dev) -> list[dict]:
    """Validation accuracy of a few sampled paths; own RNG, so the training stream is untouched."""
    rng = np.random.default_rng([cfg.seed, epoch, 7])
    res = []
    for _ in range(cfg.val_subnets):
        arch = supernet.sample_arch(rng)
        if cfg.bn_recal_batches:
            sub = supernet.extract(arch)
            recalibrate_bn(sub, _epoch_loader(train, cfg, epoch, salt=1), cfg.bn_recal_batches, seed=cfg.seed)
            acc = top1_accuracy(sub, val, dev)
        else:
            acc = top1_accuracy(supernet, val, dev, arch)
        res.append({"arch": arch.to_dict(), "acc": acc})
    supernet.train()
    return res


def read_checkpoint(path: str | Path, map_location: Any = "cpu") -> dict:
    """A supernet training checkpoint, read safely (tensors and plain data only) and checked for its keys."""
    ck = load_tensors(path, "a supernet checkpoint.pt from train-supernet", map_location)
    ck = expect_dict(ck, path, ("model",), "a supernet checkpoint",
                     "a design's weights.pt is not one; pass train-supernet's OUT/checkpoint.pt")
    want = ck.pop("checksum", None)
    if want is not None and content_sha256(ck) != want:
        raise CrossnasError(f"{path}: damaged (its content does not match the checksum stored in it) "
                            "(train again with --force)")
    return ck


def _load_weights(supernet, state: Any, path: Path) -> None:
    try:
        supernet.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError) as e:
        raise CrossnasError(f"{path}: weights do not fit this config's supernet ({short(str(e))}) "
                            "(use the checkpoint trained with this config)") from None


def load_checkpoint(supernet, path: str | Path) -> dict:
    """Load a training checkpoint's weights into `supernet`; returns the checkpoint dict."""
    ck = read_checkpoint(path)
    _check_form(ck, Path(path))
    _load_weights(supernet, ck["model"], Path(path))
    return ck


__all__ = ["FORM", "SupernetTrainConfig", "train_supernet", "load_checkpoint", "read_checkpoint"]
