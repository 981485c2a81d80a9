"""Augmentation: crop windows and flips are what they claim, seeded, and reach training batches only."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import crossnas.data.augment as aug_mod
import crossnas.supernet.train as train_mod
from crossnas.data import load_dataset
from crossnas.data.augment import AugmentConfig, augment_batch
from crossnas.models import get_model
from crossnas.pipeline.retrain import train_qat
from crossnas.space import get_space_preset
from crossnas.supernet import Supernet
from crossnas.supernet.train import SupernetTrainConfig, train_supernet

torch.set_num_threads(1)


def test_crop_is_a_window_of_the_padded_image_and_flip_a_mirror():
    x = torch.randn(64, 2, 6, 7)
    out = augment_batch(x, AugmentConfig(crop_padding=2), torch.Generator().manual_seed(0))
    assert out.shape == x.shape
    xp = torch.nn.functional.pad(x, (2, 2, 2, 2))
    offsets = set()
    for i in range(len(x)):
        hits = [(a, b) for a in range(5) for b in range(5) if torch.equal(out[i], xp[i, :, a:a + 6, b:b + 7])]
        assert hits, i
        offsets.add(hits[0])
    assert len(offsets) > 10  # offsets are drawn per image
    f = augment_batch(x, AugmentConfig(flip=True), torch.Generator().manual_seed(0))
    flipped = [torch.equal(f[i], x[i].flip(2)) for i in range(len(x))]
    assert all(flipped[i] or torch.equal(f[i], x[i]) for i in range(len(x)))
    assert 10 < sum(flipped) < 54
    again = augment_batch(x, AugmentConfig(flip=True), torch.Generator().manual_seed(0))
    torch.testing.assert_close(f, again, rtol=0, atol=0)
    assert augment_batch(x, AugmentConfig(), torch.Generator()) is x


class _Recorder:
    """Marks augmented batches (+1000) and records, per phase, whether first-layer inputs were marked."""

    def __init__(self, monkeypatch, in_channels: int):
        self.phase, self.seen, self.calls = "train", {"train": [], "other": []}, 0
        real = aug_mod.augment_batch

        def marked(x, cfg, gen):
            self.calls += 1
            return real(x, cfg, gen) + 1000.0

        monkeypatch.setattr(aug_mod, "augment_batch", marked)
        for name in ("top1_accuracy", "recalibrate_bn"):
            monkeypatch.setattr(train_mod, name, self._other(getattr(train_mod, name)))

        def hook(_m, args):
            if args and isinstance(args[0], torch.Tensor) and args[0].dim() == 4 and \
                    args[0].shape[1] == in_channels:
                self.seen[self.phase].append(bool(args[0].min() > 500))

        self.handle = torch.nn.modules.module.register_module_forward_pre_hook(hook)

    def _other(self, fn):
        def wrapped(*a, **k):
            self.phase = "other"
            try:
                return fn(*a, **k)
            finally:
                self.phase = "train"
        return wrapped


@pytest.fixture
def digits():
    return load_dataset("digits", seed=0, limit=96)


def test_supernet_trainer_augments_training_batches_only(monkeypatch, digits, tmp_path):
    space = get_space_preset("demo", input_size=8)
    torch.manual_seed(0)
    sn = Supernet.from_space(space, 1, 10, 8)
    rec = _Recorder(monkeypatch, 1)
    cfg = SupernetTrainConfig(epochs=2, batch_size=32, val_subnets=2, bn_recal_batches=1, device="cpu")
    try:
        train_supernet(sn, digits, cfg, tmp_path, progress=False,
                       augment=AugmentConfig(crop_padding=1, flip=True))
    finally:
        rec.handle.remove()
    assert rec.calls == 2 * int(np.ceil(len(digits.train) / 32))
    assert rec.seen["train"] and all(rec.seen["train"])
    assert rec.seen["other"] and not any(rec.seen["other"])  # BN recalibration and validation: as stored


def test_retraining_augments_training_batches_only(monkeypatch, digits):
    torch.manual_seed(0)
    model = get_model("lenet", 1, 10, 8, width_mult=0.5)
    rec = _Recorder(monkeypatch, 1)
    try:
        train_qat(model, digits.train, digits.val, epochs=1, lr=0.01, batch_size=32,
                  augment=AugmentConfig(flip=True))
    finally:
        rec.handle.remove()
    assert rec.calls == int(np.ceil(len(digits.train) / 32))
    assert rec.seen["train"] and all(rec.seen["train"])
    assert rec.seen["other"] and not any(rec.seen["other"])
