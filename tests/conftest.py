"""Shared fixtures: one finished tiny run (tests/test_pipeline.py's TINY config) for the reliability tests."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="session")
def tiny_done_run(tmp_path_factory):
    from crossnas.pipeline import run_pipeline
    from test_pipeline import TINY

    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("tiny-done") / "run"
    run_pipeline(TINY, out, progress=False)
    return out
