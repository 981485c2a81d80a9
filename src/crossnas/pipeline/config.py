"""The crossnas config: every section typed and validated before any work starts.

One YAML file serves `crossnas run`, `crossnas train-supernet` and `crossnas search` (each reads the
sections it needs): `data`, `space`, `supernet`, `hardware`, `search`, and the pipeline's own `select`,
`retrain`, `baselines`, `final`. Unknown keys are errors that name the field.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag

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
    """Folder holding the dataset files (None: the loader's default places)."""
    seed: int = 0
    """Seed of the train/validation split (the split is fixed by it)."""
    val_fraction: float = Field(0.1, gt=0, lt=1)
    """Share of the training images held out as the validation split."""
    limit: int | None = Field(None, ge=10)
    """Use at most this many training images (None: all), for quick runs."""
    download: bool = False
    """Download the dataset when it is not found under root."""
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
    """A shipped space preset (crossnas space --preset NAME shows it)."""
    file: str | None = None
    """A space YAML file (fields: the Space file section below)."""

    def model_post_init(self, _ctx: Any) -> None:
        if (self.preset is None) == (self.file is None):
            raise ValueError("give exactly one of preset or file")


class HardwareSection(_Strict):
    preset: str = "mnsim-default"
    """A preset name or a YAML overlay file."""
    set: dict[str, Any] = Field(default_factory=dict)
    """Dotted overrides, e.g. {device.variation: 0.1}."""


class MinAccuracy(_Strict):
    value: float = 0.0
    """Absolute accuracy, or, with relative_to, added to that baseline's validation accuracy."""
    relative_to: Literal["vgg8", "lenet"] | None = None
    """None: `value` is the floor; a baseline: the floor is its best validation accuracy plus `value`."""


class RelativeBudget(_Strict):
    value: float = Field(gt=0, allow_inf_nan=False)
    """A multiple of the baseline's metric: 0.5 is half of it."""
    relative_to: Literal["vgg8", "lenet"]
    """The baseline whose metric sets the budget: the lowest among its trained variants (default and best
    uniform bits) on the default chip, as the cost model scores it, so the budget holds against each; a
    candidate must also meet it against their cost on its own chip (the final stage compares there too)."""


def _budget_kind(v: Any) -> str:
    return "relative" if isinstance(v, dict | RelativeBudget) else "absolute"


# a mapping is a relative budget, anything else a number: an error names the one branch the value meant
Budget = Annotated[Annotated[float, Tag("absolute")] | Annotated[RelativeBudget, Tag("relative")],
                   Discriminator(_budget_kind)]


class SelectSection(_Strict):
    """How designs are chosen from the (validation) Pareto front for retraining."""

    rule: Literal["top_k", "knee", "best_under"] = "top_k"
    """top_k by metric, the knee of the front, or the best under a budget."""
    k: int = Field(3, ge=1, le=10)
    """Designs chosen (at most)."""
    metric: str = "accuracy_pim"
    """top_k ranks by this metric (max for accuracies, min otherwise)."""
    budget: dict[str, Budget] = Field(default_factory=dict)
    """best_under: e.g. {edp_js: 1e-9}, or {edp_js: {value: 0.5, relative_to: vgg8}} (half of VGG-8's,
    known once the baselines are trained); the k most accurate designs within every budget."""
    min_accuracy: MinAccuracy | None = None
    """A floor on validation accuracy (crossnas.pipeline.designs); no design above it stops the run."""
    rerank: int = Field(0, ge=0)
    """Candidates (the rule's first ones on the front) re-scored by a short standalone training."""
    rerank_epochs: int = Field(2, ge=1)
    """Epochs of each re-ranking training (fine-tuned from the supernet's weights)."""


class RetrainSection(_Strict):
    """Training of chosen designs and baselines (one recipe), quantization- and noise-aware, until the
    validation accuracy stops improving."""

    epochs: int = Field(5, ge=0)
    """The maximum number of epochs."""
    patience: int | None = Field(3, ge=1)
    """Stop after this many epochs without a better validation accuracy; None runs every epoch."""
    init: Literal["scratch", "supernet"] = "scratch"
    """Designs start from fresh seeded weights or from the supernet's (BN recalibrated). Measured on the
    demo (benchmarks/retrain_init.py): from scratch 0.993 / 0.983 best validation accuracy against 0.986 /
    0.972 from the supernet's weights, same recipe."""
    batch_size: int = Field(128, ge=1)
    """Images per training batch (retraining and baselines)."""
    lr: float = Field(0.01, gt=0)
    """Initial SGD learning rate (cosine decay)."""
    momentum: float = Field(0.9, ge=0, lt=1)
    """SGD momentum (retraining and baselines)."""
    weight_decay: float = Field(5e-4, ge=0)
    """SGD L2 weight decay (retraining and baselines)."""
    noise_sigma: float | None = Field(None, ge=0)
    """Relative weight noise during training; None takes the hardware's device.variation."""
    seed: int = 0
    """Seed of data order and noise (design i uses seed + i)."""


class BaselinesSection(_Strict):
    """Hand-designed networks trained the same way (from scratch) on the default hardware."""

    models: list[str] = Field(default_factory=lambda: ["vgg8", "lenet"])
    """Registry names (crossnas.models); an empty list skips baselines."""
    width_mult: dict[str, float] = Field(default_factory=lambda: {"vgg8": 0.25})
    """Channel multiplier per model (others 1.0): full VGG-8 is sized for CIFAR, not for a CPU demo."""
    epochs: int | None = Field(None, ge=1)
    """None: the retrain recipe's (epochs, patience, lr), so designs and baselines train alike."""
    lr: float | None = Field(None, gt=0)
    """Initial SGD learning rate of the baselines."""
    best_bits: bool = True
    """Also train each baseline at the uniform w/a bits (among the space's bit choices) best on
    validation after `bits_epochs` epochs, and score it on every design's chip."""
    bits_epochs: int = Field(2, ge=1)
    """Epochs of each short training that chooses a baseline's best uniform bits."""


class FinalSection(_Strict):
    """Final evaluation on a fixed seeded subset of the test split (every entry on the same images)."""

    test_limit: int | None = Field(2000, ge=1)
    """Test images scored (a fixed seeded subset; None: the whole split)."""
    seed: int = 0
    """Seed of the test subset, calibration batches and chip draws."""
    chips: int = Field(5, ge=1)
    """Simulated chip instances per design (device effects redrawn per chip)."""
    fidelity: Literal["exact", "fast"] = "exact"
    """Simulator fidelity of the final evaluation."""
    baselines_on: Literal["all", "picked"] = "all"
    """The best-bits baselines are also scored on every design's chip, or on the picked design's only
    (what the paired comparison reads; saves the exact simulation of the others)."""
    batch_size: int = Field(256, ge=1)
    """Images per evaluation batch."""
    calib_batches: int = Field(4, ge=1)
    """Training batches for ADC range calibration."""


class AnalogSection(_Strict):
    """Simulator speed settings; results never depend on them (not part of the resume check)."""

    kernel: Literal["auto", "int8", "float32"] = "auto"
    """GEMM of the exact simulation: auto picks the faster by a one-time probe (crossnas.analog.kernels)."""


class RunConfig(_Strict):
    name: str | None = None
    """Label of the run; the default run folder is runs/<name>."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """Where tensors run: auto picks cuda when available, else cpu."""
    threads: Literal["auto"] | Annotated[int, Field(ge=1)] = "auto"
    """torch intra-op threads per process (crossnas.threads): auto sizes them by work and free cores."""
    data: DataSection
    """The dataset and its seeded train/validation/test split."""
    augment: AugmentConfig = Field(default_factory=AugmentConfig)
    """Training-batch augmentation for the supernet and retraining (crossnas.data.augment)."""
    space: SpaceSection
    """The cross-layer search space (network, bits and circuit genes)."""
    supernet: SupernetTrainConfig = Field(default_factory=SupernetTrainConfig)
    """One-shot supernet training."""
    hardware: HardwareSection = Field(default_factory=HardwareSection)
    """The PIM chip the search starts from (genes in the space override it)."""
    search: SearchConfig = Field(default_factory=SearchConfig)
    """The multi-objective search over the space."""
    select: SelectSection = Field(default_factory=SelectSection)
    """Which front designs are retrained."""
    retrain: RetrainSection = Field(default_factory=RetrainSection)
    """Fine-tuning of the chosen designs."""
    baselines: BaselinesSection = Field(default_factory=BaselinesSection)
    """Hand-designed networks trained for comparison."""
    final: FinalSection = Field(default_factory=FinalSection)
    """Final evaluation on the test split."""
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
