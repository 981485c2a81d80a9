"""What a run's results depend on: the fully resolved config, file contents included, fingerprinted per stage.

A hardware or space *file* is stored by its content (the resolved hardware's every field; the space
file's sha256), not its path, so editing it between resumes is seen. The supernet checkpoint's sha256 is
recorded when the supernet stage ends and checked before a later stage reads it. Fields that never
change results (`NEUTRAL`: the label, the device, the simulator's speed settings, where search candidates
are evaluated) are left out.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from crossnas.errors import short
from crossnas.usercode import file_sha256

NEUTRAL = ("name", "device", "threads", "analog", "search.backend", "search.workers", "search.address")
# the first stage that reads each input: on --resume an input may change only while that stage has not
# started (stages run in order, so every later stage has not started either)
FIRST_READER = {"data": "supernet", "space": "supernet", "resolved_space": "supernet", "supernet": "supernet",
                "hardware": "search", "resolved_hardware": "search", "search": "search",
                "augment": "supernet", "baselines": "baselines", "retrain": "baselines", "select": "retrain",
                "final": "final"}


def json_sha256(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def resolved_inputs(cfg) -> dict[str, Any]:
    """The config as JSON, less `NEUTRAL`, plus the resolved hardware and the space file's content hash."""
    from crossnas.pipeline.config import resolve_hardware

    snap = cfg.model_dump(mode="json")
    for dotted in NEUTRAL:
        *parents, leaf = dotted.split(".")
        node = snap
        for p in parents:
            node = node.get(p, {})
        node.pop(leaf, None)
    snap["resolved_hardware"] = resolve_hardware(cfg).model_dump(mode="json")
    if cfg.space.file:
        snap["resolved_space"] = {"sha256": file_sha256(cfg.space.file)}
    return snap


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict) and value:
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: value}


def changed_fields(old: dict, new: dict) -> list[str]:
    """Dotted names of the leaves that differ between two inputs dicts."""
    a, b = flatten(old), flatten(new)
    return sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))


_NONE = object()


def _declared_default(dotted: str) -> Any:
    """The RunConfig field's declared default at `dotted` (a section's field), or _NONE."""
    from pydantic import BaseModel

    from crossnas.pipeline.config import RunConfig

    model: Any = RunConfig
    for part in dotted.split("."):
        fields = getattr(model, "model_fields", None) if isinstance(model, type) else None
        if not fields or part not in fields:
            return _NONE
        f = fields[part]
        model = f.annotation
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            if f.is_required():
                return _NONE
            value = f.get_default(call_default_factory=True)
            return value.model_dump(mode="json") if isinstance(value, BaseModel) else value
    return _NONE


def without_new_defaults(old: dict, new: dict) -> dict:
    """`new` less the leaves `old` lacks that hold their field's declared default: fields a later crossnas
    added, at the value that keeps the earlier behaviour, are no change to a run started before them."""
    a = flatten(old)
    out = json.loads(json.dumps(new))
    for key, value in flatten(new).items():
        if key in a:
            continue
        default = _declared_default(key)
        if default is _NONE or default != value:
            continue
        *parents, leaf = key.split(".")
        node = out
        for part in parents:
            node = node[part]
        node.pop(leaf, None)
    return out


def stage_inputs(inputs: dict, stage: str) -> dict[str, str]:
    """{section: sha256} of the inputs `stage` is the first reader of."""
    return {sec: json_sha256(inputs.get(sec)) for sec, first in FIRST_READER.items() if first == stage}


def describe(fields: list[str], old: dict, new: dict, limit: int = 3) -> str:
    """'hardware.set.device.variation (0.05 -> 0.5), ...': bounded, for one-line errors."""
    a, b = flatten(old), flatten(new)
    parts = [f"{f} ({short(repr(a.get(f)), 30)} -> {short(repr(b.get(f)), 30)})" for f in fields[:limit]]
    return ", ".join(parts) + (f" and {len(fields) - limit} more" if len(fields) > limit else "")
