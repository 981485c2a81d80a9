"""The user's own data: npz files, image folders and Python factories, end to end through `crossnas run`,
and every malformed input refused with one line naming the file, exit 2, nothing written."""

from __future__ import annotations

import copy
import json
import textwrap

import numpy as np
import pytest
import torch
from PIL import Image

from crossnas.cli import main
from crossnas.data import load_dataset
from crossnas.errors import CrossnasError

torch.set_num_threads(1)

# the smallest preset-derived run that still reaches the report (cf. tests/test_pipeline.py TINY)
TINY_RUN = {
    "name": "own", "device": "cpu",
    "space": {"preset": "demo"},
    "supernet": {"epochs": 1, "batch_size": 32, "seed": 0, "val_subnets": 0},
    "search": {"strategy": "nsga2", "budget": 4, "pop_size": 4, "seed": 0, "val_limit": 16, "bn_batches": 1,
               "final_chips": 1},
    "select": {"rule": "top_k", "k": 1},
    "retrain": {"epochs": 1, "batch_size": 32},
    "baselines": {"models": [], "epochs": 1},
    "final": {"test_limit": 12, "chips": 1, "batch_size": 16},
}


def _images(n=90, shape=(8, 8, 3), classes=3, seed=0):
    """uint8 NHWC images, one noisy prototype per class, and their labels."""
    rng = np.random.default_rng(seed)
    protos = rng.integers(0, 256, (classes, *shape))
    y = np.arange(n) % classes
    x = np.clip(protos[y] + rng.normal(0, 25, (n, *shape)), 0, 255).astype(np.uint8)
    return x, y


def _folder(root, x, y):
    for i, (img, lab) in enumerate(zip(x, y)):
        d = root / f"class{lab}"
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img.squeeze()).save(d / f"{i:03d}.png")
    return root


FACTORY = textwrap.dedent("""
    import torch
    from torch.utils.data import TensorDataset

    def make(seed=0):
        g = torch.Generator().manual_seed(seed)
        protos = torch.rand(3, 1, 8, 8, generator=g)
        def split(n):
            y = torch.arange(n) % 3
            return TensorDataset(protos[y] + 0.1 * torch.randn(n, 1, 8, 8, generator=g), y)
        return {"train": split(90), "test": split(24), "num_classes": 3}

    def broken():
        raise RuntimeError("no such sensor")

    def needs_path(path):
        return {}

    def out_of_range():
        return {"train": [(torch.zeros(1, 4, 4), 0), (torch.zeros(1, 4, 4), 5)],
                "test": [(torch.zeros(1, 4, 4), 1)], "num_classes": 3}

    def mixed_sizes():
        return {"train": [(torch.zeros(1, 4, 4), 0), (torch.zeros(1, 5, 4), 1)],
                "test": [(torch.zeros(1, 4, 4), 1)], "num_classes": 2}
""")


# --- readers ----------------------------------------------------------------------------------------
def test_npz_layouts_dtypes_and_splits_agree(tmp_path):
    x, y = _images()
    np.savez(tmp_path / "nhwc.npz", x=x, y=y)
    np.savez(tmp_path / "nchw.npz", x=(x.transpose(0, 3, 1, 2) / 255.0).astype(np.float32), y=y)
    a = load_dataset(f"npz:{tmp_path / 'nhwc.npz'}", seed=1)
    b = load_dataset("npz", path=tmp_path / "nchw.npz", layout="nchw", seed=1)
    assert a.input_shape == b.input_shape == (3, 8, 8) and a.num_classes == 3
    assert a.sizes() == b.sizes() == {"train": 65, "val": 7, "test": 18}  # 20% test, then 10% val
    torch.testing.assert_close(a.train.tensors[0], b.train.tensors[0], atol=1e-5, rtol=0)
    # an explicit test_fraction, and a file with its own test arrays
    c = load_dataset(f"npz:{tmp_path / 'nhwc.npz'}", test_fraction=0.5)
    assert c.sizes()["test"] == 45
    np.savez(tmp_path / "split.npz", x_train=x[:60], y_train=y[:60], x_test=x[60:], y_test=y[60:])
    d = load_dataset(f"npz:{tmp_path / 'split.npz'}")
    assert d.sizes()["test"] == 30 and d.sizes()["train"] + d.sizes()["val"] == 60


def test_folder_reads_classes_resizes_and_detects_grayscale(tmp_path):
    x, y = _images(n=30, shape=(10, 12, 3))
    d = load_dataset(f"folder:{_folder(tmp_path / 'rgb', x, y)}")
    assert d.input_shape == (3, 10, 12) and d.num_classes == 3 and sum(d.sizes().values()) == 30
    g, _ = _images(n=30, shape=(10, 12))
    e = load_dataset("folder", path=_folder(tmp_path / "gray", g, y), size=8)
    assert e.input_shape == (1, 8, 8)


def test_python_factory_datasets_are_split_and_normalized(tmp_path):
    (tmp_path / "mydata.py").write_text(FACTORY)
    d = load_dataset(f"python:{tmp_path / 'mydata.py'}:make", seed=0)
    assert d.input_shape == (1, 8, 8) and d.num_classes == 3
    assert d.sizes() == {"train": 81, "val": 9, "test": 24}
    assert abs(float(d.train.tensors[0].mean())) < 1e-4  # train statistics, as for built-ins


@pytest.mark.parametrize("make, expect", [
    (lambda p: np.savez(p / "f.npz", images=np.zeros((4, 1, 4, 4)), labels=np.zeros(4)),
     "f.npz: expected arrays x and y, or x_train"),
    (lambda p: np.savez(p / "f.npz", x=np.zeros((4, 1, 4, 4)), y=np.array([0, 1, -1, 1])),
     "f.npz: y: labels out of range"),
    (lambda p: np.savez(p / "f.npz", x=np.zeros((4, 1, 4, 4)), y=np.zeros(3)), "expected 4 labels"),
    (lambda p: np.savez(p / "f.npz", x_train=np.zeros((4, 1, 4, 4)), y_train=np.array([0, 1, 0, 1]),
                        x_test=np.zeros((2, 1, 5, 4)), y_test=np.zeros(2)), "mismatched image sizes"),
    (lambda p: np.savez(p / "f.npz", x=np.zeros((4, 4, 4, 4)), y=np.zeros(4)), "ambiguous"),
    (lambda p: (p / "f.npz").write_text("not a zip"), "f.npz: not a readable .npz"),
])
def test_bad_npz_is_one_line_naming_the_file(tmp_path, make, expect):
    make(tmp_path)
    with pytest.raises(CrossnasError, match=expect) as e:
        load_dataset(f"npz:{tmp_path / 'f.npz'}")
    assert "\n" not in str(e.value)


def test_bad_folders_and_factories(tmp_path):
    x, y = _images(n=6, shape=(8, 8))
    one = _folder(tmp_path / "one", x[y == 0], y[y == 0])
    with pytest.raises(CrossnasError, match="one: expected one sub-folder per class"):
        load_dataset(f"folder:{one}")
    two = _folder(tmp_path / "two", x, y)
    (two / "class1" / "zz.png").write_bytes(b"not a png")
    with pytest.raises(CrossnasError, match=r"zz.png: unreadable image"):
        load_dataset(f"folder:{two}")
    (two / "class1" / "zz.png").unlink()
    Image.fromarray(np.zeros((9, 8), np.uint8)).save(two / "class2" / "big.png")
    with pytest.raises(CrossnasError, match=r"big.png: mismatched image sizes: 9x8.*set data.size"):
        load_dataset(f"folder:{two}")
    (tmp_path / "mydata.py").write_text(FACTORY)
    for fn, expect in (("broken", "raised RuntimeError: no such sensor"),
                       ("out_of_range", r"train: labels out of range: expected 0..2, got 0..5"),
                       ("mixed_sizes", r"item 1: mismatched image sizes: expected 1x4x4, got 1x5x4"),
                       ("needs_path", r"parameter 'path' has no value \(crossnas passes seed; give path a"),
                       ("absent", "no callable 'absent'")):
        with pytest.raises(CrossnasError, match=expect):
            load_dataset(f"python:{tmp_path / 'mydata.py'}:{fn}")


# --- end to end -------------------------------------------------------------------------------------
def _write_config(path, data: dict):
    import yaml

    cfg = copy.deepcopy(TINY_RUN) | {"data": data}
    path.write_text(yaml.safe_dump(cfg))
    return path


def _source(tmp_path, source: str, good: bool = True) -> dict:
    """A data section for `source` on files written under tmp_path (a malformed one when not `good`)."""
    x, y = _images(n=60 if good else 4, shape=(8, 8), classes=3 if good else 1)
    if source == "npz":
        arrays = {"x": x, "y": y} if good else {"images": x}
        np.savez(tmp_path / "own.npz", **arrays)
        return {"name": "npz", "path": str(tmp_path / "own.npz")}
    if source == "folder":
        return {"name": "folder", "path": str(_folder(tmp_path / "imgs", x, y)), "size": 8}
    (tmp_path / "mydata.py").write_text(FACTORY)
    return {"name": "python", "factory": f"{tmp_path / 'mydata.py'}:{'make' if good else 'broken'}"}


@pytest.mark.parametrize("source", ["npz", "folder", "python"])
def test_each_source_runs_to_the_report(tmp_path, source, capsys):
    cfg = _write_config(tmp_path / "run.yaml", _source(tmp_path, source))
    out = tmp_path / "run"
    assert main(["run", str(cfg), "--out", str(out), "--no-progress"]) == 0
    assert "report:" in capsys.readouterr().out and (out / "report.html").is_file()
    final = json.loads((out / "final.json").read_text())
    assert final["entries"] and final["test_subset"]["n"] == 12
    state = json.loads((out / "run.json").read_text())
    if source == "python":  # the factory's hash is kept, and a resume with a changed file is refused
        path = str(tmp_path / "mydata.py")
        assert len(state["code"][path]) == 64
        (tmp_path / "mydata.py").write_text(FACTORY + "\n# edited\n")
        assert main(["run", str(cfg), "--out", str(out), "--resume", "--no-progress"]) == 2
        assert "mydata.py changed since" in capsys.readouterr().err


@pytest.mark.parametrize("source", ["npz", "folder", "python"])  # no x/y, one class, a factory raising
def test_bad_data_exits_2_and_writes_nothing(tmp_path, source, capsys):
    cfg = _write_config(tmp_path / "run.yaml", _source(tmp_path, source, good=False))
    out = tmp_path / "run"
    assert main(["run", str(cfg), "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("crossnas run: error:")
    assert not out.exists()


def test_config_rejects_a_source_without_its_field(tmp_path, capsys):
    cfg = _write_config(tmp_path / "run.yaml", {"name": "npz"})
    assert main(["run", str(cfg), "--out", str(tmp_path / "r"), "--no-progress"]) == 2
    assert "data.path: required for data name npz" in capsys.readouterr().err
    cfg = _write_config(tmp_path / "run.yaml", {"name": "digits", "size": 8})
    assert main(["run", str(cfg), "--out", str(tmp_path / "r"), "--no-progress"]) == 2
    assert "data.size: only for data name folder" in capsys.readouterr().err
