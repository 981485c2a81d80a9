"""`crossnas` command line: parse, call the library, print. Each subcommand is a module here with
`add_parser(subparsers)` and `run(args) -> int`; bad input exits 2 with one line, no traceback."""

from __future__ import annotations

import argparse
import importlib
import sys

from crossnas.errors import CrossnasError

SUBCOMMANDS = ("evaluate", "space", "train_supernet", "simulate", "search", "run", "export", "config",
               "hardware")


def build_parser() -> tuple[argparse.ArgumentParser, dict]:
    runners = {}
    from crossnas import __version__
    from crossnas.cli.helptext import DESCRIPTION, EPILOG, complete

    parser = argparse.ArgumentParser(prog="crossnas", description=DESCRIPTION, epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"crossnas {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in SUBCOMMANDS:
        try:
            mod = importlib.import_module(f"crossnas.cli.{name}")
        except ModuleNotFoundError as e:
            if e.name == f"crossnas.cli.{name}":
                continue  # subcommand not built yet
            raise
        before = set(sub.choices)
        mod.add_parser(sub)
        for cmd in set(sub.choices) - before:
            runners[cmd] = mod.run
    complete(parser)
    return parser, runners


def main(argv: list[str] | None = None) -> int:
    parser, runners = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(runners[args.command](args) or 0)
    except CrossnasError as e:
        print(f"crossnas {args.command}: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # a permission or disk problem no check caught: still one line naming the file
        where = f"{e.filename}: " if e.filename else ""
        print(f"crossnas {args.command}: error: {where}{e.strerror or e} (check the path, its permissions "
              "and free space)", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
