"""`crossnas hardware list` (the shipped chips) and `crossnas hardware show NAME [--set K=V] [--schema]`
(one chip resolved in full, or the JSON schema of every hardware field)."""

from __future__ import annotations

import argparse
import json


def add_parser(sub) -> None:
    p = sub.add_parser("hardware", help="list the hardware presets or show one in full",
                       description=__doc__.split("\n")[0])
    cmds = p.add_subparsers(dest="hardware_command", required=True, metavar="{list,show}")
    cmds.add_parser("list", help="the hardware presets with their main parameters")
    s = cmds.add_parser("show", help="a preset or overlay YAML resolved in full (YAML), or --schema")
    s.add_argument("name", nargs="?", default=None, help="preset name or overlay YAML file")
    s.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a key, e.g. crossbar.rows=128 (repeatable)")
    s.add_argument("--schema", action="store_true",
                   help="print the JSON schema of the hardware config (every field, type, bounds, meaning)")


def summary(hw) -> str:
    """One line: crossbar, cell, converters, device effects."""
    d = hw.device
    return (f"{hw.crossbar.rows}x{hw.crossbar.cols} {d.kind}, {d.bits_per_cell}-bit cells, "
            f"ADC {hw.adc.bits} b ({hw.adc.energy_table}), DAC {hw.dac.bits} b, {d.technology_nm} nm, "
            f"variation {d.variation:g}, weights/acts {hw.quant.weight_bits}/{hw.quant.act_bits} b")


def _first_comment(path) -> str:
    for line in path.read_text().splitlines():
        if line.startswith("#"):
            return line.lstrip("# ").strip()
    return ""


def run(args: argparse.Namespace) -> int:
    import yaml

    from crossnas.errors import CrossnasError
    from crossnas.hardware import load_hardware, parse_set_args
    from crossnas.hardware.config import PRESET_DIR, HardwareConfig, list_presets

    if args.hardware_command == "list":
        for name in list_presets():
            hw = load_hardware(name)
            print(f"{name:<16} {summary(hw)}")
            if note := _first_comment(PRESET_DIR / f"{name}.yaml"):
                print(f"{'':<16} {note}")
        print("show one: crossnas hardware show NAME; every field: docs/reference.md")
        return 0
    if args.schema:
        print(json.dumps(HardwareConfig.model_json_schema(), indent=1))
        return 0
    if args.name is None:
        raise CrossnasError("hardware show: give a preset name or a YAML file (or --schema)")
    hw = load_hardware(args.name, parse_set_args(args.set))
    print(f"# {hw.name}: {summary(hw)}")
    print(yaml.safe_dump(hw.model_dump(mode="json"), sort_keys=False), end="")
    return 0
