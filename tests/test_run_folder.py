"""A run folder is a run folder: marker, refusal of user folders, --force limited to crossnas's own
files, no starting over on state without --resume/--force, and an exclusive lock naming the holder."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import yaml

from crossnas.cli import main
from crossnas.runfolder import LOCK, MARKER
from test_pipeline import TINY


@pytest.fixture
def cfg_file(tmp_path):
    p = tmp_path / "tiny.yaml"
    p.write_text(yaml.safe_dump(TINY))
    return p


def _run(cfg_file, out, *extra):
    return main(["run", str(cfg_file), "--out", str(out), "--no-progress", "--stop-after", "supernet",
                 *extra])


def _err(capsys):
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


def test_run_refuses_a_users_folder_and_keeps_its_files(tmp_path, cfg_file, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "config.yaml").write_text("my own config\n")
    (out / "notes.txt").write_text("notes\n")
    assert _run(cfg_file, out) == 2
    assert "not a crossnas run folder" in _err(capsys)
    assert _run(cfg_file, out, "--force") == 2  # --force never replaces a file crossnas did not write
    assert f"{out / 'config.yaml'}: not written by crossnas" in _err(capsys)
    assert (out / "config.yaml").read_text() == "my own config\n"
    assert sorted(p.name for p in out.iterdir()) == [LOCK, "config.yaml", "notes.txt"]


def test_force_writes_beside_user_files_and_replaces_only_its_own(tmp_path, cfg_file, capsys):
    out = tmp_path / "mixed"
    out.mkdir()
    (out / "notes.txt").write_text("notes\n")
    assert _run(cfg_file, out, "--force") == 0
    marker = json.loads((out / MARKER).read_text())
    assert marker["kind"] == "run" and marker["format"] == 1
    assert "supernet/checkpoint.pt" in marker["files"] and "notes.txt" not in marker["files"]
    assert _run(cfg_file, out) == 2  # state: neither --resume nor --force
    assert "--resume" in _err(capsys)
    lines = (out / "supernet" / "metrics.jsonl").read_text().splitlines()
    assert _run(cfg_file, out, "--force") == 0
    assert (out / "notes.txt").read_text() == "notes\n"
    assert (out / "supernet" / "metrics.jsonl").read_text().splitlines() == lines  # replaced, not appended


def test_train_supernet_twice_needs_resume_or_force(tmp_path, cfg_file, capsys):
    out = tmp_path / "sn"
    argv = ["train-supernet", str(cfg_file), "--out", str(out), "--no-progress"]
    assert main(argv) == 0
    capsys.readouterr()
    ck = (out / "checkpoint.pt").read_bytes()
    assert main(argv) == 2
    assert "already holds a supernet with state" in _err(capsys)
    assert (out / "checkpoint.pt").read_bytes() == ck
    assert main([*argv, "--force"]) == 0
    epochs = [json.loads(line)["epoch"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert epochs == [1, 2]
    assert (out / "checkpoint.pt").read_bytes() == ck  # same seed, same weights


def test_a_folder_of_another_kind_is_refused(tmp_path, cfg_file, capsys):
    out = tmp_path / "sn"
    assert main(["train-supernet", str(cfg_file), "--out", str(out), "--no-progress"]) == 0
    capsys.readouterr()
    assert _run(cfg_file, out) == 2
    assert "holds a crossnas supernet folder, not a run folder" in _err(capsys)
    assert _run(cfg_file, out, "--force") == 0
    assert not (out / "metrics.jsonl").exists() and (out / "supernet" / "metrics.jsonl").exists()


def test_out_that_is_a_file_or_read_only(tmp_path, cfg_file, capsys):
    f = tmp_path / "file"
    f.write_text("x")
    assert _run(cfg_file, f) == 2
    assert f"{f}: is a file" in _err(capsys)
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        if os.access(ro, os.W_OK):
            pytest.skip("running as root: permissions are not enforced")
        assert _run(cfg_file, ro / "run") == 2
        assert "cannot create the folder" in _err(capsys)
        assert _run(cfg_file, ro) == 2
        assert f"{ro}: not writable" in _err(capsys)
    finally:
        ro.chmod(0o700)


def test_a_second_process_is_stopped_by_the_lock(tmp_path, cfg_file, capsys):
    out = tmp_path / "locked"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from crossnas.runfolder import claim; "
         f"f = claim({str(out)!r}, 'run'); print('held', flush=True); sys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=os.environ.copy())
    try:
        assert holder.stdout.readline().strip() == "held"
        assert _run(cfg_file, out) == 2
        err = _err(capsys)
        assert f"in use by another crossnas process (pid {holder.pid})" in err
        assert not (out / "run.json").exists()
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    assert _run(cfg_file, out) == 0  # the lock goes with its holder
