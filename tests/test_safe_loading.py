"""No code from a file: every command that reads a torch file refuses a payload-carrying pickle with a
one-line error naming the file (exit 2), and a finished stage does not read the supernet checkpoint."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
import yaml

from crossnas.cli import main
from test_pipeline import TINY


class _Payload:
    """Unpickling calls exec(code): with weights_only=False this writes the marker file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return exec, (f"open({self.marker!r}, 'w').write('ran')",)


def write_payload(path, marker, wrap=lambda p: {"model": p}):
    torch.save(wrap(_Payload(marker)), path)
    return path


@pytest.fixture
def done_run(tiny_done_run):
    return tiny_done_run


@pytest.fixture
def cfg_file(tmp_path):
    p = tmp_path / "tiny.yaml"
    p.write_text(yaml.safe_dump(TINY))
    return p


def test_the_payload_is_real(tmp_path):
    """Control: the file does run code when read the unsafe way, so the tests below can fail."""
    marker = tmp_path / "ran"
    torch.load(write_payload(tmp_path / "evil.pt", marker), weights_only=False)
    assert marker.read_text() == "ran"


def _refused(capsys, argv, evil, marker, cmd):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert not marker.exists(), "the payload ran"
    assert len(err.splitlines()) == 1 and err.startswith(f"crossnas {cmd}: error: {evil}"), err
    return err


def test_search_supernet_refuses_a_payload(tmp_path, cfg_file, capsys):
    evil, marker = write_payload(tmp_path / "evil.pt", tmp_path / "ran"), tmp_path / "ran"
    err = _refused(capsys, ["search", str(cfg_file), "--supernet", str(evil), "--out", str(tmp_path / "s"),
                            "--no-progress"], evil, marker, "search")
    assert "refused" in err


def test_train_supernet_resume_refuses_a_payload(tmp_path, cfg_file, capsys):
    out = tmp_path / "sn"
    assert main(["train-supernet", str(cfg_file), "--out", str(out), "--no-progress"]) == 0
    marker = tmp_path / "ran"
    evil = write_payload(out / "checkpoint.pt", marker)
    _refused(capsys, ["train-supernet", str(cfg_file), "--out", str(out), "--resume", "--no-progress"],
             evil, marker, "train-supernet")


def test_run_resume_refuses_a_payload_in_an_unfinished_supernet_stage(done_run, tmp_path, cfg_file, capsys):
    out = tmp_path / "run"
    shutil.copytree(done_run, out)
    state = json.loads((out / "run.json").read_text())
    state["stages"]["supernet"]["status"] = "running"  # as if killed during training
    (out / "run.json").write_text(json.dumps(state))
    marker = tmp_path / "ran"
    evil = write_payload(out / "supernet" / "checkpoint.pt", marker)
    _refused(capsys, ["run", str(cfg_file), "--out", str(out), "--resume", "--no-progress"], evil, marker,
             "run")


def test_finished_run_resume_does_not_read_the_supernet_checkpoint(done_run, tmp_path, cfg_file, capsys):
    out = tmp_path / "run"
    shutil.copytree(done_run, out)
    marker = tmp_path / "ran"
    write_payload(out / "supernet" / "checkpoint.pt", marker)
    assert main(["run", str(cfg_file), "--out", str(out), "--resume", "--no-progress"]) == 0
    assert not marker.exists()


def test_simulate_weights_refuses_a_payload(tmp_path, capsys):
    marker = tmp_path / "ran"
    evil = write_payload(tmp_path / "w.pt", marker, wrap=lambda p: {"state_dict": p})
    _refused(capsys, ["simulate", "--model", "lenet", "--weights", str(evil), "--hardware", "mnsim-default",
                      "--data", "synthetic:1x8x8:4:64"], evil, marker, "simulate")


@pytest.mark.parametrize("cmd", ["simulate", "export"])
def test_load_design_refuses_a_payload(done_run, tmp_path, capsys, cmd):
    ddir = tmp_path / "design"
    shutil.copytree(done_run / "designs" / "design-1", ddir)
    marker = tmp_path / "ran"
    evil = write_payload(ddir / "weights.pt", marker, wrap=lambda p: {"conv.weight": p})
    argv = (["simulate", "--design", str(ddir), "--data", "synthetic:1x8x8:4:240"] if cmd == "simulate"
            else ["export", str(ddir), "--onnx", str(tmp_path / "d.onnx")])
    _refused(capsys, argv, evil, marker, cmd)
    assert not (tmp_path / "d.onnx").exists()


def test_search_supernet_refuses_a_design_weights_file(done_run, tmp_path, cfg_file, capsys):
    w = done_run / "designs" / "design-1" / "weights.pt"
    assert main(["search", str(cfg_file), "--supernet", str(w), "--out", str(tmp_path / "s"),
                 "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert f"{w}: not a supernet checkpoint" in err and len(err.strip().splitlines()) == 1


def test_truncated_supernet_checkpoint_names_the_file(done_run, tmp_path, cfg_file, capsys):
    ck = tmp_path / "checkpoint.pt"
    ck.write_bytes((done_run / "supernet" / "checkpoint.pt").read_bytes()[:1000])
    assert main(["search", str(cfg_file), "--supernet", str(ck), "--out", str(tmp_path / "s"),
                 "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert f"{ck}: cannot read" in err and len(err.strip().splitlines()) == 1


class _SystemPayload:
    """A payload through a module torch blocks outright (os.system), whose refusal torch words differently."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        import os

        return os.system, (f"touch {self.marker}",)


def test_a_blocked_module_payload_is_named_as_refused(tmp_path):
    from crossnas.errors import CrossnasError
    from crossnas.safeload import load_tensors

    evil, marker = tmp_path / "evil.pt", tmp_path / "ran"
    torch.save({"model": _SystemPayload(marker)}, evil)
    with pytest.raises(CrossnasError, match=r"refused: holds a \S*system object"):
        load_tensors(evil, "a supernet checkpoint")
    assert not marker.exists()
