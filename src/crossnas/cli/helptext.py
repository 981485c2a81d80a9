"""Help texts that every subcommand shares: the top-level description, and the choices of the options
that name a dataset, a hardware preset, a run preset, a space preset or a built-in model.

`complete(parser)` runs once the subcommands are added: an option in `CHOICES` gets its choices appended
to its help, an option without help gets a generic one. The choices are read without importing torch
(the dataset and model names are listed here; tests/test_cli_help.py keeps them equal to the library's).
"""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

DESCRIPTION = """\
crossnas: joint search of a neural network, its per-layer quantization and the analog
processing-in-memory (PIM) chip that runs it (one-shot supernet, NSGA-II / evolutionary search,
an analog crossbar simulator and a hardware cost model)."""

EPILOG = """\
typical use:
  crossnas run demo                      the whole pipeline on a shipped preset (runs/demo)
  crossnas run CONFIG --dry-run          the resolved config, stage plan and a time estimate
  crossnas config validate CONFIG        every problem in a config, one line each
  crossnas config reference              every config field: type, unit, default, meaning
  crossnas hardware list | show NAME     the hardware presets
  crossnas space --preset demo           a search space's genes and size
  crossnas evaluate --model lenet --input 1x28x28      cost of a network on a chip
  crossnas simulate --design DIR --data digits         PIM accuracy of a saved design

`crossnas COMMAND --help` describes each command. Docs: docs/*.md in the repository."""

DATASETS = ("digits", "fashion-mnist", "cifar10", "cifar100", "synthetic:CxHxW:classes:n", "npz:FILE",
            "folder:DIR", "python:FILE.py:FUNCTION")
MODELS = ("lenet", "resnet18-cifar", "vgg8")


def _preset_names(package: str) -> list[str]:
    """YAML presets shipped in `package`/presets, found without importing the package."""
    spec = importlib.util.find_spec(package.split(".")[0])
    root = Path(next(iter(spec.submodule_search_locations)))
    folder = root.joinpath(*package.split(".")[1:], "presets")
    return sorted(p.stem for p in folder.glob("*.yaml"))


def choices_for(dest: str) -> tuple[str, list[str]] | None:
    """(label, names) of the values an option named `dest` takes."""
    if dest == "data":
        return "datasets", list(DATASETS)
    if dest == "hardware":
        return "presets", _preset_names("crossnas.hardware")
    if dest == "config":
        return "run presets", _preset_names("crossnas.pipeline")
    if dest == "preset":
        return "space presets", _preset_names("crossnas.space")
    if dest == "model":
        return "built-in models", list(MODELS)
    return None


GENERIC = {"no_progress": "no progress bars or lines", "out": "output folder",
           "num_classes": "classes of the classifier", "seed": "random seed",
           "batch_size": "images per batch", "calib_batches": "training batches for ADC range calibration",
           "device": "where tensors run (auto: cuda when available)", "config": "run config"}


def complete(parser: argparse.ArgumentParser) -> None:
    """Fill in missing help and append the choices of name-taking options, in every subcommand."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                complete(sub)
            continue
        if action.help == argparse.SUPPRESS or action.dest == "help":
            continue
        if not action.help:
            action.help = GENERIC.get(action.dest, action.dest.replace("_", " "))
        found = choices_for(action.dest) if action.choices is None else None
        if found and not all(n in action.help for n in found[1]):
            action.help = f"{action.help} ({found[0]}: {', '.join(found[1])})"
