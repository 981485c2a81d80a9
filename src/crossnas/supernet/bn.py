"""Batch-norm recalibration: cumulative running statistics over N training batches, nothing else moves."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm


def _batches(loader: Iterable, n_batches: int):
    for k, batch in enumerate(loader):
        if k >= n_batches:
            break
        yield batch[0] if isinstance(batch, (tuple, list)) else batch


@torch.no_grad()
def _recal(bns: list[_BatchNorm], model: nn.Module, run, loader, n_batches: int, seed: int) -> None:
    was_training = model.training
    model.eval()  # dropout off, activation ranges frozen; only the BNs below see train mode
    saved = [bn.momentum for bn in bns]
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative moving average
        bn.train()
    dev = next(model.parameters()).device
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for x in _batches(loader, n_batches):
            run(x.to(dev))
    for bn, m in zip(bns, saved):
        bn.momentum = m
    model.train(was_training)


def recalibrate_bn(module: nn.Module, loader: Iterable, n_batches: int = 20, seed: int = 0) -> nn.Module:
    """Reset every BN's running stats and re-estimate them (cumulative average) over n_batches."""
    bns = [m for m in module.modules() if isinstance(m, _BatchNorm)]
    _recal(bns, module, module, loader, n_batches, seed)
    return module


def recalibrate_supernet_bn(supernet, arch, loader: Iterable, n_batches: int = 20, seed: int = 0):
    """Same for the BNs on one supernet path (the other paths' statistics are untouched)."""
    _recal(supernet.path_bns(arch), supernet, lambda x: supernet(x, arch), loader, n_batches, seed)
    return supernet
