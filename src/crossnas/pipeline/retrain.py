"""Quantization- and noise-aware training of a standalone module (chosen designs and baselines).

The module's own fake quantizers (QuantConv2d / QuantLinear) give quantization awareness. Noise awareness:
each step perturbs every conv/linear weight multiplicatively, w * (1 + sigma * n), runs forward and
backward on the perturbed weights, restores the clean weights and applies the gradient to them, so the
network learns weights whose accuracy survives programming variation (the analog simulator draws the
same per-cell relative variation).
"""

from __future__ import annotations

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
              augment=None) -> dict:
    """Train `module` in place (SGD, cosine schedule); returns val accuracy before/after and the epochs.
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
        return {"epochs": 0, "noise_sigma": noise_sigma, "val_acc_before": before, "val_acc_after": before}
    gen = torch.Generator().manual_seed(seed)
    noise_gen = torch.Generator(device=device).manual_seed(seed + 1)
    loader = DataLoader(train_set, batch_size=batch_size, shuffle=True, generator=gen, drop_last=False)
    opt = torch.optim.SGD(module.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)
    steps = epochs * len(loader)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * s / steps)))
    weights = _weights(module)
    with task_for(progress, label, epochs, "epochs") as bar:
        for epoch in range(epochs):
            module.train()
            aug_gen = epoch_generator(seed, epoch, salt=1) if augment is not None and augment.active else None
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
                bar.line(f"{label} epoch {epoch + 1}/{epochs} loss {loss.item():.4f}")
    module.eval()
    return {"epochs": epochs, "noise_sigma": noise_sigma, "val_acc_before": before,
            "val_acc_after": accuracy(module, val_loader, device)}
