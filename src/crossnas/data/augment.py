"""Training-batch augmentation: random crop after zero padding, and random horizontal flip (plain torch).

The config's top-level `augment:` section. The supernet trainer and retraining apply it to training
batches only; batch-norm recalibration, ADC calibration and every evaluation see the images as stored.
Off by default (digits and other tiny images); the CIFAR presets use crop 32 with padding 4 and flips, the
recipe of He et al. 2016 ("Deep Residual Learning", sec. 4.2) that the published supernet followed.
"""

from __future__ import annotations

import torch
from pydantic import BaseModel, ConfigDict, Field


class AugmentConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    crop_padding: int = Field(0, ge=0)
    """Pad each side by this many pixels, then crop a random window of the input size; 0: no crop.
    Images are stored normalized, so the padding is the training mean (0 after normalization)."""
    flip: bool = False
    """Mirror each image left-right with probability 1/2."""

    @property
    def active(self) -> bool:
        return self.crop_padding > 0 or self.flip


def augment_batch(x: torch.Tensor, cfg: AugmentConfig, gen: torch.Generator) -> torch.Tensor:
    """A randomly cropped / flipped copy of the batch x (N, C, H, W); draws from `gen` (a CPU generator)."""
    if not cfg.active:
        return x
    n, _, h, w = x.shape
    p = cfg.crop_padding
    if p:
        xp = torch.nn.functional.pad(x, (p, p, p, p))  # (N, C, H + 2p, W + 2p)
        oy = torch.randint(0, 2 * p + 1, (n,), generator=gen).to(x.device)
        ox = torch.randint(0, 2 * p + 1, (n,), generator=gen).to(x.device)
        rows = (oy[:, None] + torch.arange(h, device=x.device))[:, :, None]  # (N, H, 1)
        cols = (ox[:, None] + torch.arange(w, device=x.device))[:, None, :]  # (N, 1, W)
        x = xp[torch.arange(n, device=x.device)[:, None, None], :, rows, cols].permute(0, 3, 1, 2)
    if cfg.flip:
        mask = (torch.rand(n, generator=gen) < 0.5).to(x.device)
        x = torch.where(mask[:, None, None, None], x.flip(3), x)
    return x.contiguous()


def epoch_generator(seed: int, epoch: int, salt: int = 0) -> torch.Generator:
    """The augmentation draws of one epoch, fixed by (seed, epoch): a resumed run repeats them exactly."""
    return torch.Generator().manual_seed(abs(seed) * 1_000_033 + 7_919 * salt + epoch + 17)
