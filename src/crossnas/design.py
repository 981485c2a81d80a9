"""A design on disk: the network, its per-layer bits, its weights and the hardware it was chosen for.

A design is a folder with three files:
- `design.json`: {"format": "crossnas-design/1", "name", "in_channels", "num_classes", "input_size", and
  either "network" (a searched subnet: `NetworkArch.to_dict()` plus "head": {"hidden", "dropout"}) or
  "model" (a baseline: {"name": registry name, "kwargs", "weight_bits", "act_bits", "first_signed"}
  rebuilt with `get_model` + `quantize_model`), "metrics", "software"};
- `hardware.yaml`: the full HardwareConfig (no `base:`), loadable with `crossnas.hardware.load_hardware`;
- `weights.pt`: the module's state_dict (activation ranges and BN statistics included).

`save_design` writes into a temporary sibling folder and renames it over the target, so a reader never
sees a half-written design. `load_design` rebuilds the module without the supernet checkpoint.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn

from crossnas.errors import CrossnasError
from crossnas.hardware.config import HardwareConfig, load_hardware
from crossnas.safeload import load_tensors
from crossnas.space.arch import NetworkArch
from crossnas.usercode import file_sha256

FORMAT = "crossnas-design/1"
DESIGN_JSON, HARDWARE_YAML, WEIGHTS_PT = "design.json", "hardware.yaml", "weights.pt"
_MODEL_KEYS = {"name", "kwargs", "weight_bits", "act_bits", "first_signed", "sha256"}


@dataclass
class Design:
    """A loaded design: `module` in eval mode with its weights and bits, its hardware, the subnet's
    architecture (None for a baseline) and the rest of design.json in `meta`."""

    module: nn.Module
    hardware: HardwareConfig
    network: NetworkArch | None
    meta: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None

    @property
    def name(self) -> str:
        return str(self.meta.get("name", ""))

    @property
    def input_shape(self) -> tuple[int, int, int]:
        h, w = input_hw(self.meta["input_size"])
        return int(self.meta["in_channels"]), h, w

    @property
    def metrics(self) -> dict[str, Any]:
        return dict(self.meta.get("metrics") or {})


def input_hw(size) -> tuple[int, int]:
    """design.json's input_size: an int (square) or [H, W]."""
    if isinstance(size, list | tuple):
        h, w = size
        return int(h), int(w)
    return int(size), int(size)


# --- building ---------------------------------------------------------------------------------------
def _subnet_head(module: nn.Module) -> dict[str, Any]:
    """Head hidden sizes and dropout of an extracted SubNet (what build_subnet needs besides the arch)."""
    head = getattr(module, "head", None)
    names = list(getattr(head, "layers", []))
    fcs = [getattr(head, n) for n in names if n.startswith("fc")]
    if not fcs or not isinstance(getattr(module, "blocks", None), nn.ModuleList):
        raise CrossnasError(f"save_design: with network=..., module must be the SubNet from "
                            f"Supernet.extract, got {type(module).__name__}")
    drops = [getattr(head, n).p for n in names if isinstance(getattr(head, n), nn.Dropout)]
    return {"hidden": [int(fc.out_features) for fc in fcs[:-1]], "dropout": float(drops[0]) if drops else 0.1}


def _check_model_spec(model: Any, where: str) -> dict[str, Any]:
    if not isinstance(model, dict) or not isinstance(model.get("name"), str):
        raise CrossnasError(f"{where}: model: expected a dict with a registry 'name', 'kwargs', "
                            f"'weight_bits' and 'act_bits', got {model!r}")
    unknown = sorted(set(model) - _MODEL_KEYS)
    if unknown:
        raise CrossnasError(f"{where}: model: unknown keys {unknown} (expected {sorted(_MODEL_KEYS)})")
    kwargs = model.get("kwargs") or {}
    if not isinstance(kwargs, dict):
        raise CrossnasError(f"{where}: model.kwargs: expected a mapping, got {kwargs!r}")
    wb = model.get("weight_bits")
    if isinstance(wb, dict):
        wb = {str(k): tuple(v) if isinstance(v, list | tuple) else v for k, v in wb.items()}
    out = {"name": model["name"], "kwargs": dict(kwargs), "weight_bits": wb,
           "act_bits": model.get("act_bits"), "first_signed": bool(model.get("first_signed", True))}
    if model.get("sha256"):
        out["sha256"] = str(model["sha256"])
    return out


def _check_code(spec: dict[str, Any], code, where: str) -> None:
    """A model from a user's file is rebuilt only when the caller's user named that file (`code`), and only
    while the file is the one the design was saved with."""
    from crossnas.usercode import is_code_spec, split_spec

    name = spec["name"]
    if not is_code_spec(name):
        return
    if name not in set(code or ()):
        raise CrossnasError(f"{where}: model {name!r} is user code; crossnas runs code only from a file you "
                            "name yourself: pass --model with that file.py:NAME")
    path, _ = split_spec(name, "model")
    if spec.get("sha256") and path.is_file() and file_sha256(path) != spec["sha256"]:
        raise CrossnasError(f"{where}: model file {path} changed since the design was saved (sha256 "
                            f"{spec['sha256'][:12]}...); the weights may not fit it")


def _build(meta: dict[str, Any], where: str, code=()) -> tuple[nn.Module, NetworkArch | None]:
    """The module described by design.json fields (fresh weights) and its NetworkArch if a subnet."""
    from crossnas.models import get_model
    from crossnas.quant import quantize_model
    from crossnas.supernet.model import build_subnet

    try:
        c, k = int(meta["in_channels"]), int(meta["num_classes"])
        h, w = input_hw(meta["input_size"])
        s = h if h == w else (h, w)
    except (KeyError, TypeError, ValueError) as e:
        raise CrossnasError(f"{where}: expected integer in_channels, num_classes and input_size ({e})"
                            ) from None
    if ("network" in meta) == ("model" in meta):
        raise CrossnasError(f"{where}: expected exactly one of 'network' (searched subnet) or 'model' "
                            "(baseline)")
    if "network" in meta:
        try:
            arch = NetworkArch.from_dict(meta["network"])
            head = meta.get("head") or {}
            hidden = tuple(int(h) for h in head.get("hidden", (200, 50)))
            dropout = float(head.get("dropout", 0.1))
        except (KeyError, TypeError, ValueError) as e:
            raise CrossnasError(f"{where}: network/head: invalid ({e.__class__.__name__}: {e})") from None
        return build_subnet(arch, c, k, s, head_hidden=hidden, dropout=dropout), arch
    spec = _check_model_spec(meta["model"], where)
    _check_code(spec, code, where)
    wb, ab = spec["weight_bits"], spec["act_bits"]
    try:
        module = get_model(spec["name"], c, k, s, **spec["kwargs"])
        return quantize_model(module, wb, None if isinstance(wb, dict) else ab,
                              first_signed=spec["first_signed"]), None
    except ValueError as e:  # CrossnasError included: say which file described the model
        raise CrossnasError(f"{where}: model: {e}") from None


def _quant_bits(module: nn.Module) -> dict[str, tuple]:
    return {n: (m.weight_bits, m.act_bits, bool(m.act_signed)) for n, m in module.named_modules()
            if hasattr(m, "weight_bits") and hasattr(m, "act_range")}


def _load_state(module: nn.Module, state: dict, where: str) -> None:
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as e:
        msg = " ".join(str(e).split())
        raise CrossnasError(f"{where}: weights do not match the design's network: {msg[:400]}") from None


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_jsonable(v) for v in x]
    if isinstance(x, torch.Tensor):
        return _jsonable(x.tolist())
    if hasattr(x, "item") and callable(x.item) and getattr(x, "ndim", 1) == 0:  # numpy scalars
        return x.item()
    if hasattr(x, "tolist"):
        return _jsonable(x.tolist())
    if isinstance(x, float) and not math.isfinite(x):
        return None if math.isnan(x) else x  # json writes inf as Infinity, which json reads back
    if x is None or isinstance(x, bool | int | float | str):
        return x
    raise CrossnasError(f"save_design: metrics: {x!r} ({type(x).__name__}) is not JSON-serialisable")


# --- saving -----------------------------------------------------------------------------------------
def save_design(path: str | os.PathLike, module: nn.Module, *, hardware: HardwareConfig | str | dict,
                in_channels: int, num_classes: int, input_size: int | tuple[int, int],
                network: NetworkArch | dict | None = None, model: dict[str, Any] | None = None,
                metrics: dict[str, Any] | None = None, name: str | None = None) -> Path:
    """Save `module` as a design folder at `path` (replacing an existing design there) and return it.

    Give `network` for a searched subnet (module = `Supernet.extract(network)`, possibly fine-tuned) or
    `model` = {"name": registry name, "kwargs": {...}, "weight_bits": w, "act_bits": a} for a baseline
    built by `get_model(name, ..., **kwargs)` + `quantize_model(m, w, a)`. The description is checked by
    rebuilding the module and loading the weights into it before anything is written.
    """
    path = Path(path)
    hw = load_hardware(hardware)
    meta: dict[str, Any] = {"format": FORMAT, "name": str(name if name is not None else path.name),
                            "in_channels": int(in_channels), "num_classes": int(num_classes),
                            "input_size": _size_json(input_size)}
    if (network is None) == (model is None):
        raise CrossnasError("save_design: give exactly one of network= (searched subnet) or model= "
                            "(baseline)")
    if network is not None:
        try:
            arch = NetworkArch.from_dict(network) if isinstance(network, dict) else network
        except (KeyError, TypeError, ValueError) as e:
            raise CrossnasError(f"save_design: network: invalid ({e.__class__.__name__}: {e})") from None
        if not isinstance(arch, NetworkArch):
            raise CrossnasError(f"save_design: network: expected a NetworkArch, got {type(arch).__name__}")
        meta["network"] = arch.to_dict()
        meta["head"] = _subnet_head(module)
        own = getattr(module, "arch_dict", None)
        if own is not None and NetworkArch.from_dict(own) != arch:
            raise CrossnasError("save_design: network differs from the architecture the module was "
                                "extracted for")
    else:
        spec = _check_model_spec(model, "save_design")
        from crossnas.usercode import code_files

        for sha in code_files([spec["name"]]).values():
            spec["sha256"] = sha
        meta["model"] = _jsonable(spec)
    meta["metrics"] = _jsonable(dict(metrics or {}))
    meta["software"] = _software()

    state = {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}
    rebuilt, _ = _build(meta, "save_design", code=[meta.get("model", {}).get("name")])
    _load_state(rebuilt, state, "save_design")
    got, want = _quant_bits(module), _quant_bits(rebuilt)
    if got != want:
        diff = {n: (got.get(n), want.get(n)) for n in sorted(set(got) | set(want))
                if got.get(n) != want.get(n)}
        raise CrossnasError(f"save_design: module's (weight_bits, act_bits, act_signed) differ from the "
                            f"description's (module, described): {dict(list(diff.items())[:5])}")

    _replace_dir(path, lambda tmp: _write_files(tmp, meta, hw, state))
    return path


def _size_json(size) -> int | list[int]:
    h, w = input_hw(size)
    return h if h == w else [h, w]


def _software() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    try:
        own = version("crossnas")
    except PackageNotFoundError:
        own = "unknown"
    return {"crossnas": own, "torch": torch.__version__}


def _write_files(folder: Path, meta: dict, hw: HardwareConfig, state: dict) -> None:
    # the checksums let load_design tell a cut or garbled file from the one written here
    hw_text = yaml.safe_dump(hw.model_dump(mode="json"), sort_keys=False)
    (folder / HARDWARE_YAML).write_text(hw_text)
    torch.save(state, folder / WEIGHTS_PT)
    meta["hardware_sha256"] = hashlib.sha256(hw_text.encode()).hexdigest()
    meta["weights_sha256"] = file_sha256(folder / WEIGHTS_PT)
    (folder / DESIGN_JSON).write_text(json.dumps(meta, indent=2) + "\n")


def _replace_dir(path: Path, fill) -> None:
    """Fill a temporary sibling folder, then rename it to `path` (the old design is removed after)."""
    if path.exists() and not (path / DESIGN_JSON).is_file() and (path.is_file() or any(path.iterdir())):
        raise CrossnasError(f"save_design: {path} exists and is not a design folder; not overwriting it")
    path.parent.mkdir(parents=True, exist_ok=True)
    tag = uuid.uuid4().hex[:8]
    tmp = path.with_name(f".{path.name}.tmp-{tag}")
    tmp.mkdir()
    try:
        fill(tmp)
        old = None
        if path.exists():
            old = path.with_name(f".{path.name}.old-{tag}")
            os.replace(path, old)
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


# --- loading ----------------------------------------------------------------------------------------
def read_design_meta(path: str | os.PathLike) -> dict[str, Any]:
    """design.json of a design folder, checked for its format."""
    f = Path(path) / DESIGN_JSON
    if not f.is_file():
        raise CrossnasError(f"{f}: not found (not a crossnas design folder)")
    try:
        meta = json.loads(f.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CrossnasError(f"{f}: not valid JSON ({e})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        got = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
        raise CrossnasError(f"{f}: format: expected {FORMAT!r}, got {got!r}")
    from crossnas import schema

    schema.check(schema.DesignMeta, meta, str(f))
    return meta


def load_design(path: str | os.PathLike, device: str | torch.device = "cpu", *, code=()) -> Design:
    """Rebuild a saved design: the module (eval mode, weights and bits loaded) and its hardware.

    A model from a user's file is rebuilt only when its `file.py:NAME` is in `code` (named by the user in
    their own command or config, never taken from design.json alone)."""
    path = Path(path)
    meta = read_design_meta(path)
    module, arch = _build(meta, str(path / DESIGN_JSON), code=code)
    hw_file = path / HARDWARE_YAML
    if not hw_file.is_file():
        raise CrossnasError(f"{hw_file}: not found")
    want = meta.get("hardware_sha256")
    if want is not None and file_sha256(hw_file) != want:
        raise CrossnasError(f"{hw_file}: differs from what save_design wrote (damaged or edited) (restore "
                            "it; simulate other hardware with simulate --hardware or --set)")
    hw = load_hardware(hw_file)
    w_file = path / WEIGHTS_PT
    state = load_tensors(w_file, "the design's state_dict")
    if not isinstance(state, dict):
        raise CrossnasError(f"{w_file}: expected a state_dict, got {type(state).__name__}")
    _load_state(module, state, str(w_file))
    # after the shape checks: a garbled file can still load (torch does not check its zip CRCs)
    want = meta.get("weights_sha256")
    if want is not None and file_sha256(w_file) != want:
        raise CrossnasError(f"{w_file}: differs from what save_design wrote (damaged or replaced) "
                            "(restore it)")
    return Design(module=module.to(device).eval(), hardware=hw, network=arch, meta=meta, path=path)
