"""Built-in reference networks and a registry: `get_model(name, in_channels, num_classes, input_size, **kw)`.

`name` may also be `path/to/file.py:factory`, where factory takes (in_channels, num_classes, input_size).
Extra keyword arguments go to the factory (e.g. `width_mult` for vgg8 and lenet).
"""

from __future__ import annotations

import importlib.util
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

from torch import nn

from crossnas.errors import CrossnasError
from crossnas.models.zoo import lenet, resnet18_cifar, vgg8

_REGISTRY: dict[str, Callable[..., nn.Module]] = {
    "vgg8": vgg8, "lenet": lenet, "resnet18-cifar": resnet18_cifar}


def list_models() -> list[str]:
    return sorted(_REGISTRY)


def get_model(name: str, in_channels: int = 3, num_classes: int = 10, input_size: int = 32,
              **kwargs: Any) -> nn.Module:
    if name in _REGISTRY:
        fn = _REGISTRY[name]
    elif ":" in name and name.rsplit(":", 1)[0].endswith(".py"):
        path, factory = name.rsplit(":", 1)
        fn = _load_factory(Path(path), factory)
    else:
        raise CrossnasError(f"model: expected one of {list_models()} or path.py:factory, got {name!r}")
    if kwargs:
        try:
            inspect.signature(fn).bind(in_channels, num_classes, input_size, **kwargs)
        except TypeError as e:
            raise CrossnasError(f"model {name!r}: bad extra arguments {sorted(kwargs)} ({e})") from None
    return fn(in_channels, num_classes, input_size, **kwargs)


def _load_factory(path: Path, factory: str) -> Callable[..., nn.Module]:
    if not path.is_file():
        raise CrossnasError(f"model: {path}: file not found")
    spec = importlib.util.spec_from_file_location(f"_crossnas_user_{path.stem}", path)
    mod = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(mod)
    except Exception as e:  # noqa: BLE001 - user code
        raise CrossnasError(f"model: {path}: cannot import ({e.__class__.__name__}: {e})") from None
    fn = getattr(mod, factory, None)
    if not callable(fn):
        raise CrossnasError(f"model: {path}: no callable {factory!r}")
    return fn
