"""`crossnas config validate FILE` (every problem, one line each) and `crossnas config reference`
(the page of every config field, generated from the models)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_parser(sub) -> None:
    p = sub.add_parser("config", help="check a run config, or print the reference of every config field",
                       description=__doc__.split("\n")[0])
    cmds = p.add_subparsers(dest="config_command", required=True, metavar="{validate,reference}")
    v = cmds.add_parser("validate", help="check a run config in full: exit 0, or 2 with one line per problem")
    v.add_argument("file", help="run config YAML or a run preset name")
    r = cmds.add_parser("reference", help="the reference page (Markdown) of every field: type, unit, "
                                          "default, meaning")
    r.add_argument("--out", type=Path, default=None, help="write the page here (default: print it)")


def run(args: argparse.Namespace) -> int:
    if args.config_command == "reference":
        from crossnas.config_reference import render
        from crossnas.search.store import atomic_write

        text = render()
        if args.out is None:
            sys.stdout.write(text)
        else:
            atomic_write(args.out, text)
            print(f"wrote {args.out}")
        return 0
    return _validate(args.file)


def _validate(spec: str) -> int:
    from crossnas.pipeline import resolve_config_path
    from crossnas.pipeline.checks import config_problems
    from crossnas.yamlio import read_yaml_mapping

    path = resolve_config_path(spec)
    cfg, problems = config_problems(read_yaml_mapping(path, "run config"), str(path))
    if problems:
        for line in problems:
            print(line, file=sys.stderr)
        print(f"{path}: {len(problems)} problem{'s' * (len(problems) != 1)}", file=sys.stderr)
        return 2
    from crossnas.pipeline.config import resolve_hardware

    hw = resolve_hardware(cfg)
    src = cfg.space.preset or cfg.space.file
    print(f"{path}: ok (data {cfg.data.name}, space {src}, hardware {hw.name}, search {cfg.search.strategy} "
          f"budget {cfg.search.budget}, device {cfg.device})")
    return 0
