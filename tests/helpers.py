"""Shared test fixtures' building blocks."""

from __future__ import annotations

import tempfile

import torch

from crossnas.data import load_dataset
from crossnas.space import get_space_preset
from crossnas.supernet import Supernet
from crossnas.supernet.train import SupernetTrainConfig, train_supernet


def one_epoch_demo_supernet(limit: int = 400):
    """(splits, space, supernet): the digits demo space after one epoch of training. An untrained
    supernet's quantizers output zeros, so every candidate would score the same and tests could not fail."""
    splits = load_dataset("digits", seed=0, limit=limit)
    space = get_space_preset("demo", input_size=splits.input_size)
    torch.manual_seed(0)
    sn = Supernet.from_space(space, splits.in_channels, splits.num_classes, splits.input_size)
    cfg = SupernetTrainConfig(epochs=1, batch_size=64, lr=0.05, val_subnets=0, device="cpu")
    with tempfile.TemporaryDirectory() as d:
        train_supernet(sn, splits, cfg, d, progress=False)
    return splits, space, sn
