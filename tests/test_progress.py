"""Progress: one timestamped line per unit of work (injected clock), estimates over the stage, the log
file in every mode, and the stages that report through the one progress module."""

from __future__ import annotations

import io
import re

import torch

from crossnas.progress import Reporter, task_for, use


class Clock:
    def __init__(self, t: float = 1_700_000_000.0):
        self.t = t

    def __call__(self) -> float:
        return self.t


def test_task_line_running_total_and_stage_estimate(tmp_path):
    clock, out = Clock(), io.StringIO()
    rep = Reporter("plain", out, clock=clock, log_path=tmp_path / "run.log")
    rep.header("retrain", "2 designs x 2 epochs")
    t = rep.task("retrain", 4, "epochs")
    for i in range(3):
        clock.t += 10 * (i + 1)  # 10 s, 20 s, 30 s: the estimate follows the pace so far
        t.advance(1)
        t.line(f"design-1 epoch {i + 1}")
    lines = out.getvalue().splitlines()
    assert len(lines) == 4 and lines[0].endswith("== retrain: 2 designs x 2 epochs")
    assert re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d retrain: design-1 epoch 1 ", lines[1])
    assert lines[1].endswith("[1/4 epochs, 10s elapsed, ~30s left in the stage]")
    assert lines[2].endswith("[2/4 epochs, 30s elapsed, ~30s left in the stage]")
    assert lines[3].endswith("[3/4 epochs, 1m00s elapsed, ~20s left in the stage]")
    assert (tmp_path / "run.log").read_text().splitlines() == lines


def test_off_mode_prints_nothing_but_logs(tmp_path):
    out = io.StringIO()
    rep = Reporter("off", out, clock=Clock(), log_path=tmp_path / "run.log")
    with use(rep), task_for(True, "x", 2, "units") as t:
        t.advance(2)
        t.line("done")
    assert out.getvalue() == "" and "x: done [2/2 units" in (tmp_path / "run.log").read_text()
    with task_for(False, "x", 2, "units") as none:
        assert none is None


def test_rich_mode_bar_renders_to_its_stream():
    out = io.StringIO()
    with use(Reporter("rich", out, clock=Clock())) as rep, task_for(True, "supernet", 3, "steps") as t:
        t.advance(3, loss=0.5)
        t.line("epoch 1/1")
    assert rep.mode == "rich" and "epoch 1/1" in out.getvalue() and "supernet" in out.getvalue()


def test_supernet_prints_one_line_per_epoch(tmp_path):
    """A redirected run: one line per epoch however fast or slow the epochs are (the clock never moves)."""
    from crossnas.data import load_dataset
    from crossnas.space import get_space_preset
    from crossnas.supernet import Supernet
    from crossnas.supernet.train import SupernetTrainConfig, train_supernet

    splits = load_dataset("synthetic:1x8x8:4:80", seed=0)
    space = get_space_preset("demo", input_size=8)
    torch.manual_seed(0)
    sn = Supernet.from_space(space, 1, 4, 8)
    out = io.StringIO()
    cfg = SupernetTrainConfig(epochs=3, batch_size=32, val_subnets=0, device="cpu")
    with use(Reporter("plain", out, clock=Clock())):
        train_supernet(sn, splits, cfg, tmp_path, progress=True)
    lines = out.getvalue().splitlines()
    steps = -(-len(splits.train) // 32)
    assert [ln.split("supernet: ")[1].split(" loss")[0] for ln in lines] == ["epoch 1/3", "epoch 2/3",
                                                                               "epoch 3/3"]
    assert all(f"[{(i + 1) * steps}/{3 * steps} steps" in ln for i, ln in enumerate(lines))


def test_search_prints_one_line_per_generation():
    from crossnas.search import search
    from test_search import OBJ, ToySpace, toy_evaluate

    out = io.StringIO()
    with use(Reporter("plain", out, clock=Clock())):
        res = search(ToySpace(), toy_evaluate, objectives=OBJ, budget=12, pop_size=4, seed=0, progress=True)
    lines = out.getvalue().splitlines()
    assert len(lines) == res.generations >= 3
    assert all(f"search: generation {g + 1}, best acc" in ln for g, ln in enumerate(lines))
    assert lines[-1].split("[")[1].startswith(f"{res.n_evaluations}/12 evaluations")
