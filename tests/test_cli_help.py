"""The command line explains itself: --version, a complete top-level help, every option with a help
text, and the options that take a name list the names the library knows."""

from __future__ import annotations

import argparse

import pytest

from crossnas.cli import build_parser, main
from crossnas.cli.helptext import DATASETS, MODELS


def test_version(capsys):
    import crossnas

    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.strip() == f"crossnas {crossnas.__version__}"


def test_top_level_help_is_complete(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    parser, runners = build_parser()
    assert "analog\nprocessing-in-memory (PIM) chip" in out and "hardware cost model)." in out
    for cmd in runners:
        assert f"\n    {cmd} " in out, cmd
    assert "typical use:" in out and out.rstrip().endswith("in the repository.")


def _subparsers(parser):
    for a in parser._actions:
        if isinstance(a, argparse._SubParsersAction):
            for name, sub in a.choices.items():
                yield name, sub
                yield from _subparsers(sub)


def test_every_option_has_help_and_names_list_their_choices():
    from crossnas.data import list_datasets
    from crossnas.hardware import list_presets
    from crossnas.models import list_models

    assert list(DATASETS) == list_datasets() and list(MODELS) == list_models()
    parser, _ = build_parser()
    subs = dict(_subparsers(parser))
    for name, sub in subs.items():
        for a in sub._actions:
            assert a.help or isinstance(a, argparse._SubParsersAction), (name, a.dest)
    helps = {a.dest: a.help for a in subs["simulate"]._actions}
    assert all(d in helps["data"] for d in DATASETS)
    assert all(p in helps["hardware"] for p in list_presets())
    assert "demo" in {a.dest: a.help for a in subs["run"]._actions}["config"]
