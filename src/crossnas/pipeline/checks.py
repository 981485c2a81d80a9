"""Every problem in a run config at once: pydantic's field errors, then the checks that need more than
one section's types (the dataset name, the hardware preset and its overrides, the space).

`config_problems` is what `load_run_config` (first problem) and `crossnas config validate` (all of them)
share; each problem is one line that starts with the file and the field path.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ValidationError

from crossnas.errors import ConfigErrors, CrossnasError, error_lines

_WHERE = "config"  # the prefix a check writes for its source; `_lines` puts the file there


def _lines(exc: CrossnasError, where: str, field: str) -> list[str]:
    """`where: field: message` for each line of a (possibly multi-problem) error."""
    raw = exc.lines if isinstance(exc, ConfigErrors) else [str(exc)]
    out = []
    for msg in raw:
        for prefix in (f"{where}: ", f"{_WHERE}: "):  # a check that names the file (or "config") already
            msg = msg.removeprefix(prefix)
        msg = msg.removeprefix("override: ")  # hardware overrides name their key after this
        named = msg.startswith((f"{field}.", f"{field}:"))
        out.append(f"{where}: {msg if named else f'{field}: {msg}'}")
    return out


def _check_data(section: Any) -> None:
    """The dataset name and the fields its source needs (`crossnas.data.sources`)."""
    from crossnas.data import list_datasets
    from crossnas.data.sources import check_data_section

    check_data_section(section, list_datasets(), _WHERE)


def _check_hardware(section: Any) -> list[tuple[str, CrossnasError]]:
    """The preset (or overlay file) and then `set`, so a bad override is named as one."""
    from crossnas.hardware import load_hardware

    try:
        hw = load_hardware(section.preset)
    except CrossnasError as e:
        return [("hardware.preset", e)]
    problems, known = [], {}
    for key, value in section.set.items():  # unknown keys one by one, so one does not hide the others
        try:
            hw.with_overrides({key: value})
        except ConfigErrors:
            pass  # a bad value: the joint validation below names it
        except CrossnasError as e:
            problems.append(("hardware.set", e))
            continue
        known[key] = value
    try:
        hw.with_overrides(known)
    except CrossnasError as e:
        problems.append(("hardware.set", e))
    return problems


def _check_space(section: Any) -> None:
    from crossnas.space.crosslayer import load_spec
    from crossnas.space.presets import get_space_spec

    get_space_spec(section.preset) if section.preset else load_spec(section.file)


def _single(check: Callable[[Any], None], field: str) -> Callable[[Any], list[tuple[str, CrossnasError]]]:
    def run(section: Any) -> list[tuple[str, CrossnasError]]:
        try:
            check(section)
        except CrossnasError as e:
            return [(field, e)]
        return []
    return run


# section -> check of its parsed value; a section that fails its own types is not checked further
SECTION_CHECKS: dict[str, Callable[[Any], list[tuple[str, CrossnasError]]]] = {
    "data": _single(_check_data, "data"),
    "hardware": _check_hardware,
    "space": _single(_check_space, "space"),
}


def config_problems(raw: dict, where: str) -> tuple[Any, list[str]]:
    """(the RunConfig or None, one line per problem). Sections are checked one by one, so a wrong
    hardware preset is reported together with a type error elsewhere."""
    from crossnas.pipeline.config import RunConfig

    lines: list[str] = []
    cfg = None
    try:
        cfg = RunConfig.model_validate(raw)
    except ValidationError as e:
        lines += error_lines(e, where, root="RunConfig")
    for name, check in SECTION_CHECKS.items():
        section = getattr(cfg, name) if cfg is not None else _parse_section(raw, name)
        if section is None:
            continue
        try:
            found = check(section)
        except (AttributeError, TypeError, ValueError):
            continue  # a malformed section (named above) that the check cannot read
        for field, exc in found:
            lines += _lines(exc, where, field)
    return (cfg if not lines else None), lines


def _parse_section(raw: dict, name: str) -> BaseModel | None:
    """One section on its own (None when it is malformed: pydantic has named it already)."""
    from crossnas.pipeline.config import RunConfig

    field = RunConfig.model_fields[name]
    if name not in raw:
        return field.get_default(call_default_factory=True)
    try:
        return field.annotation.model_validate(raw[name])
    except ValidationError:
        pass
    if isinstance(raw[name], dict):  # its own errors are named already; check what can be checked
        try:
            return field.annotation.model_construct(**raw[name])
        except ValueError:
            return None
    return None
