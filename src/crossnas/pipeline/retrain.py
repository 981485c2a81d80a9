"""Quantization- and noise-aware training of a standalone module (chosen designs and baselines).

The module's own fake quantizers (QuantConv2d / QuantLinear) give quantization awareness. Noise awareness:
each step perturbs every conv/linear weight multiplicatively, w * (1 + sigma * n), runs forward and
backward on the perturbed weights, restores the clean weights and applies the gradient to them, so the
network learns weights whose accuracy survives programming variation (the analog simulator draws the
same per-cell relative variation).

Convergence: with `patience`, the validation accuracy is measured after every epoch and training stops
once it has not improved for `patience` epochs (or at `epochs`, the maximum); the module ends at the
weights of its best epoch (epoch 0, the start, included). Budgets are epochs, never wall time, so
results do not depend on the load.
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from crossnas.progress import Task, task_for


def _weights(module: nn.Module) -> list[torch.Tensor]:
    return [m.weight for m in module.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def accuracy(module: nn.Module, loader, device: torch.device) -> float:
    """Digital (fake-quantized) top-1 accuracy; the module's train/eval mode is kept."""
    from crossnas.supernet.train import top1_accuracy

    was = module.training
    acc = top1_accuracy(module, loader, device)
    module.train(was)
    return acc


def train_qat(module: nn.Module, train_set, val_set, *, epochs: int, lr: float, batch_size: int = 128,
              momentum: float = 0.9, weight_decay: float = 5e-4, noise_sigma: float = 0.0, seed: int = 0,
              device: torch.device | str = "cpu", progress: bool | Task = False, label: str = "train",
              patience: int | None = None, augment=None) -> dict:
    """Train `module` in place (SGD, cosine schedule over `epochs`); returns val accuracy before/after,
    the epochs run, the per-epoch validation curve and the best epoch (whose weights the module keeps
    when `patience` is set; without it every epoch runs and the last weights are kept).
    `progress`: a bar of its own (True) or a step of the caller's stage task (`crossnas.progress.Task`).

    Reproducible: the shuffling generator and the noise generator are seeded from `seed`. `augment`
    (`crossnas.data.augment.AugmentConfig`) transforms the training batches, never the val batches.
    """
    from crossnas.data.augment import augment_batch, epoch_generator

    device = torch.device(device)
    module.to(device)
    val_loader = DataLoader(val_set, batch_size=256)
    before = accuracy(module, val_loader, device)
    if epochs == 0:
        return {"epochs": 0, "noise_sigma": noise_sigma, "val_acc_before": before, "val_acc_after": before,
                "val_curve": [], "best_epoch": 0, "max_epochs": 0, "patience": patience}
    gen = torch.Generator().manual_seed(seed)
    noise_gen = torch.Generator(device=device).manual_seed(seed + 1)
    loader = DataLoader(train_set, batch_size=batch_size, shuffle=True, generator=gen, drop_last=False)
    opt = torch.optim.SGD(module.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)
    steps = epochs * len(loader)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * s / steps)))
    weights = _weights(module)
    curve: list[float] = []
    # the starting weights count as epoch 0: inherited supernet weights can be the best there is
    best, best_epoch = before, 0
    best_state = copy.deepcopy(module.state_dict()) if patience is not None else None
    with task_for(progress, label, epochs, "epochs") as bar:
        for epoch in range(1, epochs + 1):
            module.train()
            aug_gen = (epoch_generator(seed, epoch - 1, salt=1) if augment is not None and augment.active
                       else None)
            for x, y in loader:
                x, y = x.to(device), y.to(device)
                if aug_gen is not None:
                    x = augment_batch(x, augment, aug_gen)
                clean = [w.detach().clone() for w in weights] if noise_sigma > 0 else None
                if clean is not None:
                    with torch.no_grad():
                        for w in weights:
                            w.mul_(1 + noise_sigma * torch.randn(w.shape, generator=noise_gen, device=device))
                loss = F.cross_entropy(module(x), y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                if clean is not None:
                    with torch.no_grad():
                        for w, c in zip(weights, clean):
                            w.copy_(c)
                nn.utils.clip_grad_norm_(module.parameters(), 5.0)
                opt.step()
                sched.step()
            if bar is not None:
                bar.advance(1)
                bar.line(f"{label} epoch {epoch}/{epochs} loss {loss.item():.4f}")
            if patience is None:
                continue
            curve.append(accuracy(module, val_loader, device))
            if curve[-1] > best:
                best, best_epoch = curve[-1], epoch
                best_state = copy.deepcopy(module.state_dict())
            elif epoch - best_epoch >= patience:
                break
    if best_state is not None:
        module.load_state_dict(best_state)
    module.eval()
    after = accuracy(module, val_loader, device)
    if patience is None:
        curve, best_epoch = [after], epochs  # one evaluation, at the end
    return {"epochs": best_epoch if patience is None else len(curve), "noise_sigma": noise_sigma,
            "val_acc_before": before, "val_acc_after": after, "val_curve": curve, "best_epoch": best_epoch,
            "max_epochs": epochs, "patience": patience}
