"""The crossnas config: every section typed and validated before any work starts.

One YAML file serves `crossnas run`, `crossnas train-supernet` and `crossnas search` (each reads the
sections it needs): `data`, `space`, `supernet`, `hardware`, `search`, and the pipeline's own `select`,
`retrain`, `baselines`, `final`. Unknown keys are errors that name the field.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from crossnas.data.augment import AugmentConfig
from crossnas.errors import ConfigErrors
from crossnas.search.config import SearchConfig
from crossnas.supernet.train import SupernetTrainConfig
from crossnas.yamlio import read_yaml_mapping


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DataSection(_Strict):
    name: str
    """A built-in dataset, or the user's own: npz (with path), folder (with path) or python (with factory)."""
    root: str | None = None
    seed: int = 0
    val_fraction: float = Field(0.1, gt=0, lt=1)
    limit: int | None = Field(None, ge=10)
    download: bool = False
    path: str | None = None
    """npz: the .npz file; folder: the folder with one sub-folder of PNG/JPEG images per class."""
    factory: str | None = None
    """python: path/to/file.py:FUNCTION returning {"train": Dataset, "test": Dataset, "num_classes": int}."""
    layout: Literal["nchw", "nhwc", "auto"] = "auto"
    """npz: axis order of the images; auto takes the smaller of axes 1 and 3 as channels."""
    size: int | tuple[int, int] | None = Field(None)
    """folder: resize every image to H (square) or [H, W] pixels; unset: all images must share one size."""
    test_fraction: float | None = Field(None, gt=0, lt=1)
    """npz with only x/y, or folder: fraction held out as the seeded test split (default 0.2)."""


class SpaceSection(_Strict):
    preset: str | None = None
    file: str | None = None

    def model_post_init(self, _ctx: Any) -> None:
        if (self.preset is None) == (self.file is None):
            raise ValueError("give exactly one of preset or file")


class HardwareSection(_Strict):
    preset: str = "mnsim-default"
    """A preset name or a YAML overlay file."""
    set: dict[str, Any] = Field(default_factory=dict)
    """Dotted overrides, e.g. {device.variation: 0.1}."""


class SelectSection(_Strict):
    """How designs are chosen from the (validation) Pareto front for retraining."""

    rule: Literal["top_k", "knee", "best_under"] = "top_k"
    k: int = Field(3, ge=1, le=10)
    metric: str = "accuracy_pim"
    """top_k ranks by this metric (max for accuracies, min otherwise)."""
    budget: dict[str, float] = Field(default_factory=dict)
    """best_under: e.g. {edp_js: 1e-9}; the k most accurate designs within every budget."""


class RetrainSection(_Strict):
    """Fine-tuning of chosen designs from their inherited weights, quantization- and noise-aware."""

    epochs: int = Field(5, ge=0)
    batch_size: int = Field(128, ge=1)
    lr: float = Field(0.01, gt=0)
    momentum: float = Field(0.9, ge=0, lt=1)
    weight_decay: float = Field(5e-4, ge=0)
    noise_sigma: float | None = Field(None, ge=0)
    """Relative weight noise during training; None takes the hardware's device.variation."""
    seed: int = 0


class BaselinesSection(_Strict):
    """Hand-designed networks trained the same way (from scratch) on the default hardware."""

    models: list[str] = Field(default_factory=lambda: ["vgg8", "lenet"])
    """Registry names (crossnas.models); an empty list skips baselines."""
    width_mult: dict[str, float] = Field(default_factory=lambda: {"vgg8": 0.25})
    """Channel multiplier per model (others 1.0): full VGG-8 is sized for CIFAR, not for a CPU demo."""
    epochs: int = Field(10, ge=1)
    lr: float = Field(0.05, gt=0)


class FinalSection(_Strict):
    """Final evaluation on a fixed seeded subset of the test split (every entry on the same images)."""

    test_limit: int | None = Field(2000, ge=1)
    seed: int = 0
    chips: int = Field(5, ge=1)
    fidelity: Literal["exact", "fast"] = "exact"
    batch_size: int = Field(256, ge=1)
    calib_batches: int = Field(4, ge=1)


class AnalogSection(_Strict):
    """Simulator speed settings; results never depend on them (not part of the resume check)."""

    kernel: Literal["auto", "int8", "float32"] = "auto"
    """GEMM of the exact simulation: auto picks the faster by a one-time probe (crossnas.analog.kernels)."""


class RunConfig(_Strict):
    name: str | None = None
    device: Literal["auto", "cpu", "cuda"] = "auto"
    data: DataSection
    augment: AugmentConfig = Field(default_factory=AugmentConfig)
    """Training-batch augmentation for the supernet and retraining (crossnas.data.augment)."""
    space: SpaceSection
    supernet: SupernetTrainConfig = Field(default_factory=SupernetTrainConfig)
    hardware: HardwareSection = Field(default_factory=HardwareSection)
    search: SearchConfig = Field(default_factory=SearchConfig)
    select: SelectSection = Field(default_factory=SelectSection)
    retrain: RetrainSection = Field(default_factory=RetrainSection)
    baselines: BaselinesSection = Field(default_factory=BaselinesSection)
    final: FinalSection = Field(default_factory=FinalSection)
    analog: AnalogSection = Field(default_factory=AnalogSection)
    """Simulator speed settings (crossnas.analog); results do not depend on them."""


def load_run_config(source: str | Path | dict) -> RunConfig:
    """Validate a whole run config (a YAML path or a mapping); hardware and space are resolved too, so a
    wrong preset name fails here rather than after training."""
    if isinstance(source, dict):
        raw, where = source, "config"
    else:
        raw, where = read_yaml_mapping(Path(source), "run config"), str(source)
    from crossnas.pipeline.checks import config_problems

    cfg, problems = config_problems(raw, where)
    if problems:
        raise ConfigErrors(problems)
    return cfg


def load_splits(cfg: RunConfig):
    from crossnas.data import load_dataset

    d = cfg.data
    return load_dataset(d.name, root=d.root, seed=d.seed, val_fraction=d.val_fraction, limit=d.limit,
                        download=d.download, path=d.path, factory=d.factory, layout=d.layout, size=d.size,
                        test_fraction=d.test_fraction)


def build_supernet(cfg: RunConfig, splits, space):
    """The supernet at its seeded initial weights (they must not depend on what ran before)."""
    import torch

    from crossnas.supernet import Supernet

    torch.manual_seed(cfg.supernet.seed)
    return Supernet.from_space(space, splits.in_channels, splits.num_classes, splits.input_size)


def resolve_hardware(cfg: RunConfig):
    from crossnas.hardware import load_hardware

    return load_hardware(cfg.hardware.preset, cfg.hardware.set)


def resolve_space(cfg: RunConfig, input_size: int):
    from crossnas.space import get_space_preset
    from crossnas.space.presets import load_space

    if cfg.space.preset:
        return get_space_preset(cfg.space.preset, input_size=input_size)
    return load_space(cfg.space.file, input_size=input_size)
