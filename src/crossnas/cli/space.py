"""`crossnas space`: show a search space's genes and how many candidates it holds."""

from __future__ import annotations

import argparse

from rich.console import Console
from rich.table import Table


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("space", help="show a search space: genes, choices and counts")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--preset", default=None, help="space preset name (default: crossnas-paper)")
    src.add_argument("--file", default=None, help="space YAML file")
    p.add_argument("--input-size", type=int, default=None, help="input height = width (default: the spec's)")
    return p


def run(args) -> int:
    from crossnas.space.presets import get_space_preset, load_space

    if getattr(args, "file", None):
        space = load_space(args.file, input_size=args.input_size)
    else:
        space = get_space_preset(
            getattr(args, "preset", None) or "crossnas-paper", input_size=args.input_size
        )
    d = space.describe()
    table = Table(
        title=f"space {d['name']} (input {d['input_size']}x{d['input_size']}, "
        f"head {d['head_hidden']} @ {d['head_bits']} bits)"
    )
    table.add_column("gene")
    table.add_column("choices")
    for label, choices in d["genes"]:
        table.add_row(label, ", ".join(str(c) for c in choices))
    console = Console()
    console.print(table)
    console.print(f"distinct topologies (non-skip blocks x widths, skips last): {d['topologies']:,}")
    console.print(f"distinct networks (with bits): {d['networks']:,}")
    console.print(f"configurations (networks x hardware): {d['configs']:,}")
    return 0
