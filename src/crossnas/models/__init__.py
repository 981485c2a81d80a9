"""Built-in reference networks and a registry: `get_model(name, in_channels, num_classes, input_size, **kw)`.

`name` may also be `path/to/file.py:NAME`, a class or a factory in the user's own file. It is called with
the keyword arguments its signature names among `in_channels`, `num_classes` and `input_size`, plus the
extra ones given (`--model-arg k=v`, e.g. `width_mult` for vgg8 and lenet); a parameter crossnas cannot
fill is refused by name. `input_size` is an int for square inputs and (H, W) otherwise.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from torch import nn

from crossnas.errors import CrossnasError
from crossnas.models.zoo import lenet, resnet18_cifar, vgg8
from crossnas.usercode import call_with_matching, is_code_spec, load_callable, split_spec

_REGISTRY: dict[str, Callable[..., nn.Module]] = {
    "vgg8": vgg8, "lenet": lenet, "resnet18-cifar": resnet18_cifar}


def list_models() -> list[str]:
    return sorted(_REGISTRY)


def model_label(name: str) -> str:
    """A file-name-safe label: the registry name, or `file-NAME` for `path/to/file.py:NAME`."""
    if is_code_spec(name):
        path, attr = split_spec(name, "model")
        return f"{Path(path).stem}-{attr}"
    return name


def get_model(name: str, in_channels: int = 3, num_classes: int = 10, input_size: int | tuple[int, int] = 32,
              **kwargs: Any) -> nn.Module:
    if name in _REGISTRY:
        fn = _REGISTRY[name]
    elif is_code_spec(name):
        fn = load_callable(name, "model")
    else:
        raise CrossnasError(f"model: expected one of {list_models()} or path.py:NAME, got {name!r}")
    if isinstance(input_size, tuple | list):
        h, w = (int(v) for v in input_size)
        input_size = h if h == w else (h, w)
    offered = {"in_channels": in_channels, "num_classes": num_classes, "input_size": input_size}
    try:
        model = call_with_matching(fn, offered, kwargs, f"model {name!r}")
    except CrossnasError:
        raise
    except Exception as e:  # noqa: BLE001 - building the network failed on these arguments
        raise CrossnasError(f"model {name!r}: cannot be built for in_channels={in_channels}, num_classes="
                            f"{num_classes}, input_size={input_size} ({e.__class__.__name__}: {e})") from None
    if not isinstance(model, nn.Module):
        raise CrossnasError(f"model {name!r}: expected a torch.nn.Module, got {type(model).__name__}")
    return model


def parse_model_args(items: list[str]) -> dict[str, Any]:
    """`--model-arg k=v` values as keyword arguments (v read as YAML: 0.5, true, [1, 2], text)."""
    import yaml

    out = {}
    for it in items:
        key, sep, val = it.partition("=")
        if not sep or not key.isidentifier():
            raise CrossnasError(f"--model-arg: expected NAME=VALUE, got {it!r}")
        out[key] = yaml.safe_load(val) if val else ""
    return out
