"""Names of modified chips: the preset's name plus one tag per changed field, e.g.
`mnsim-default+xbar64+cell2+adc8`, so a report, a design's hardware.yaml and an ONNX file never show a
preset's name for a chip that is not that preset."""

from __future__ import annotations

from typing import Any

# dotted field -> short tag prefix; other fields use their last name part (`variation0.05`)
TAGS = {"crossbar.rows": "xbar", "crossbar.cols": "xbar", "device.bits_per_cell": "cell", "adc.bits": "adc",
        "dac.bits": "dac", "system.crossbars_per_pe": "xpe", "system.pes_per_tile": "pet",
        "system.duplication": "dup", "adc.per_layer": "adcmix", "quant.weight_bits": "w",
        "quant.act_bits": "a", "device.variation": "var"}


def _flat(d: dict, prefix: str = "") -> dict[str, Any]:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict) and k != "per_layer":
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _value(v: Any) -> str:
    """Numbers follow the prefix (`adc8`); words after a dash (`dup-balance`)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return f"-{v}"
    return f"{v:g}" if isinstance(v, float) else str(v)


def _tags(after: dict[str, Any], changed: list[str]) -> dict[str, str]:
    """{tag prefix: tag} for the changed fields (rows and cols together as one crossbar tag)."""
    tags: dict[str, str] = {}
    for key in changed:
        prefix = TAGS.get(key, key.rsplit(".", 1)[-1])
        if prefix == "xbar":
            r, c = after["crossbar.rows"], after["crossbar.cols"]
            tags[prefix] = f"xbar{r}" if r == c else f"xbar{r}x{c}"
        elif prefix == "adcmix":
            tags[prefix] = prefix
        else:
            tags[prefix] = f"{prefix}{_value(after[key])}"
    return tags


def derived_name(name: str, before: dict, after: dict) -> str:
    """`name` with a tag for every field that differs between the two config dumps; a tag already in
    the name for the same field is replaced (a chip modified twice keeps one tag per field)."""
    b, a = _flat(before), _flat(after)
    changed = [k for k in a if k != "name" and b.get(k) != a[k]]
    if not changed:
        return name
    base, *old = name.split("+")
    order = list(TAGS)
    changed.sort(key=lambda k: order.index(k) if k in order else len(order))
    new = _tags(a, changed)
    kept = [t for t in old if not any(t.startswith(p) and _is_tag_of(t, p) for p in new)]
    return "+".join([base, *kept, *new.values()])


def _is_tag_of(tag: str, prefix: str) -> bool:
    """`adc8` is a tag of `adc` and `a9` of `a`, but `adc8` is not one of `a`: a value follows."""
    rest = tag[len(prefix):]
    return rest == "" or rest[0].isdigit() or rest[0] == "-"
