"""The configuration reference page (docs/reference.md), generated from the pydantic models.

Every field of the run config, the hardware config and the space file, with its type (and bounds), unit,
default and meaning. The meaning is the field's attribute docstring (or its trailing comment) in the
model's source (or its pydantic `description`); `undocumented()` lists any field with no meaning, so
a new field cannot reach the page undescribed (tests/test_config_cli.py).
"""

from __future__ import annotations

import ast
import inspect
import json
import textwrap
import types
import typing
from functools import cache
from typing import Any, Literal, Union

from pydantic import BaseModel
from pydantic.fields import FieldInfo

# unit by name suffix (the fields name their unit), then whole-name rules
_SUFFIX_UNITS = (("bits_per_cell", "bits"), ("variation", "fraction"), ("input_size", "pixels"),
                 ("_ohm", "ohm"), ("_um2", "um^2"), ("_mm2", "mm^2"), ("_ns", "ns"), ("_nm", "nm"),
                 ("_hz", "Hz"), ("_gbps", "Gbit/s"), ("_kb", "KB"), ("_v", "V"), ("_w", "W"),
                 ("_f", "F"), ("_s", "s"), ("_js", "J*s"), ("bits", "bits"), ("_rate", "fraction"),
                 ("_fraction", "fraction"), ("percentile", "%"), ("epochs", "epochs"),
                 ("batch_size", "images"), ("_limit", "images"), ("limit", "images"),
                 ("budget", "evaluations"), ("_batches", "batches"), ("chips", "chips"))


def unit_of(name: str) -> str:
    for suffix, unit in _SUFFIX_UNITS:
        if name.endswith(suffix):
            return unit
    return "-"


@cache
def _source_docs(cls: type) -> dict[str, str]:
    """{field: attribute docstring or trailing `# comment`} from the class source."""
    try:
        src = textwrap.dedent(inspect.getsource(cls))
    except (OSError, TypeError):
        return {}
    lines = src.splitlines()
    body = ast.parse(src).body[0].body
    docs = {}
    for i, node in enumerate(body):
        if not isinstance(node, ast.AnnAssign) or not isinstance(node.target, ast.Name):
            continue
        nxt = body[i + 1] if i + 1 < len(body) else None
        if isinstance(nxt, ast.Expr) and isinstance(getattr(nxt, "value", None), ast.Constant) \
                and isinstance(nxt.value.value, str):
            docs[node.target.id] = " ".join(nxt.value.value.split())
            continue
        tail = lines[node.end_lineno - 1].split("#", 1)
        if len(tail) == 2:
            docs[node.target.id] = tail[1].strip()
    return docs


def meaning(cls: type, name: str, info: FieldInfo) -> str:
    for klass in cls.__mro__:  # a field documented on a base class keeps its text
        if name in getattr(klass, "model_fields", {}) and (doc := _source_docs(klass).get(name)):
            return doc
    return info.description or ""


def _model_of(annotation: Any) -> type[BaseModel] | None:
    """The section model of a field (`Model` or `Model | None`), else None."""
    if typing.get_origin(annotation) in (Union, types.UnionType):
        models = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _model_of(models[0]) if len(models) == 1 else None
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def type_text(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:  # validation metadata is not the type; its bounds are said as a field's
        bounds = ", ".join(b for m in args[1:] if isinstance(m, FieldInfo) and (b := _bounds(m)))
        return type_text(args[0]) + (f" ({bounds})" if bounds else "")
    if origin is Literal:
        return " \\| ".join(str(a) for a in args)
    if origin in (Union, types.UnionType):
        return " \\| ".join("None" if a is type(None) else type_text(a) for a in args)
    if origin is not None:
        name = getattr(origin, "__name__", str(origin))
        return f"{name}[{', '.join(type_text(a) for a in args)}]"
    if isinstance(annotation, type):
        return annotation.__name__
    return str(annotation)


def _bounds(info: FieldInfo) -> str:
    out = []
    for m in info.metadata:
        for attr, sym in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")):
            v = getattr(m, attr, None)
            if v is not None:
                out.append(f"{sym} {v:g}" if isinstance(v, float) else f"{sym} {v}")
    return ", ".join(out)


def default_text(info: FieldInfo) -> str:
    if info.is_required():
        return "required"
    value = info.get_default(call_default_factory=True)
    if isinstance(value, BaseModel):
        return "(section)"
    return f"`{json.dumps(value, default=str)}`"


def rows(model: type[BaseModel], prefix: str = "") -> list[tuple[str, str, str, str, str]]:
    """(path, type, unit, default, meaning) of every leaf field; sub-models expand in place."""
    out = []
    for name, info in model.model_fields.items():
        path = f"{prefix}{name}"
        sub = _model_of(info.annotation)
        if sub is not None:
            if typing.get_origin(info.annotation) is not None:  # an optional section: say so, then expand
                out.append((path, "section \\| None", "-", default_text(info), meaning(model, name, info)))
            out += rows(sub, f"{path}.")
            continue
        typ = type_text(info.annotation)
        if b := _bounds(info):
            typ += f" ({b})"
        out.append((path, typ, unit_of(name), default_text(info), meaning(model, name, info)))
    return out


def undocumented(models: list[type[BaseModel]] | None = None) -> list[str]:
    """Fields (model.field) with no meaning anywhere: none may ship."""
    missing = []
    for top, _title, _intro in _documents() if models is None else [(m, "", "") for m in models]:
        stack = [top]
        while stack:
            m = stack.pop()
            for name, info in m.model_fields.items():
                if not meaning(m, name, info):
                    missing.append(f"{m.__name__}.{name}")
                if (sub := _model_of(info.annotation)) is not None:
                    stack.append(sub)
    return missing


def _documents() -> list[tuple[type[BaseModel], str, str]]:
    from crossnas.hardware.config import HardwareConfig
    from crossnas.pipeline.config import RunConfig
    from crossnas.space.crosslayer import CrossLayerSpec

    return [
        (RunConfig, "Run config",
         "The YAML file of `crossnas run CONFIG` (also read by `train-supernet` and `search`). Check one "
         "with `crossnas config validate FILE`; see the plan with `crossnas run CONFIG --dry-run`."),
        (HardwareConfig, "Hardware config",
         "A hardware preset or overlay file (`hardware.preset`; `base: PRESET` plus the keys it changes) "
         "and the keys of `hardware.set` / `--set KEY=VALUE`. `crossnas hardware list` names the presets; "
         "`crossnas hardware show NAME` prints one in full."),
        (CrossLayerSpec, "Space file",
         "A space YAML file (`space.file`). Hardware genes (crossbar, dac_bits, ...) are searched and "
         "override the hardware config's value for each candidate."),
    ]


def _cell(text: str) -> str:
    return text.replace("|", "\\|") if "\\|" not in text else text


def render() -> str:
    """The whole page (Markdown)."""
    out = ["# Configuration reference", "",
           "Generated from the pydantic models by `crossnas config reference --out docs/reference.md`; "
           "do not edit by hand (tests/test_config_cli.py keeps it in sync). Units: the field's name "
           "states it (`_ohm`, `_ns`, `_hz`, ...); `-` means a plain number, a name or a count.", ""]
    for model, title, intro in _documents():
        out += [f"## {title}", "", intro, ""]
        section = None
        for path, typ, unit, default, text in rows(model):
            head = path.split(".")[0] if "." in path else ""
            if head != section:
                section = head
                out += ["", f"### `{head}`" if head else "### top level", "",
                        "| field | type | unit | default | meaning |", "|---|---|---|---|---|"]
            out.append(f"| `{path}` | {_cell(typ)} | {unit} | {_cell(default)} | {_cell(text)} |")
        out.append("")
    return "\n".join(out).replace("\n\n\n", "\n\n").rstrip() + "\n"
