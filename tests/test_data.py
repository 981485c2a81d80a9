import gzip
import pickle
import struct

import numpy as np
import pytest
import torch

from crossnas.data import DataSplits, load_dataset, read_idx
from crossnas.errors import CrossnasError

torch.set_num_threads(1)


def _disjoint(d: DataSplits):
    tr, va = set(d.indices["train"].tolist()), set(d.indices["val"].tolist())
    assert not tr & va


def test_digits_shapes_splits_and_determinism():
    d = load_dataset("digits", seed=0)
    assert (d.in_channels, d.input_size, d.num_classes) == (1, 8, 10)
    n = d.sizes()
    assert n["test"] == 359 and n["train"] + n["val"] == 1797 - 359 and n["val"] == round(0.1 * 1438)
    x, y = d.train[0]
    assert x.shape == (1, 8, 8) and x.dtype == torch.float32 and y.dtype == torch.int64
    # normalized with train statistics
    assert abs(float(d.train.tensors[0].mean())) < 1e-4 and abs(float(d.train.tensors[0].std()) - 1) < 1e-2
    # digits: train, val and test index one pool, pairwise disjoint and covering it
    all_idx = np.concatenate([d.indices[k] for k in ("train", "val", "test")])
    assert len(set(all_idx.tolist())) == 1797
    d2 = load_dataset("digits", seed=0)
    assert torch.equal(d.val.tensors[0], d2.val.tensors[0]) and torch.equal(
        d.test.tensors[1], d2.test.tensors[1]
    )
    d3 = load_dataset("digits", seed=1)
    assert not np.array_equal(d.indices["val"], d3.indices["val"])
    small = load_dataset("digits", limit=100)
    assert small.sizes() == {"train": 100, "val": 20, "test": 20}
    _disjoint(small)


def test_synthetic():
    d = load_dataset("synthetic:3x6x6:4:500", seed=3)
    assert (d.in_channels, d.input_size, d.num_classes) == (3, 6, 4)
    assert sum(d.sizes().values()) == 500 and d.sizes()["test"] == 100
    all_idx = np.concatenate([d.indices[k] for k in ("train", "val", "test")])
    assert len(set(all_idx.tolist())) == 500
    # learnable: nearest class mean on train classifies val well
    xtr, ytr = d.train.tensors
    means = torch.stack([xtr[ytr == c].mean(0) for c in range(4)]).flatten(1)
    xva, yva = d.val.tensors
    pred = torch.cdist(xva.flatten(1), means).argmin(1)
    assert (pred == yva).float().mean() > 0.9
    assert torch.equal(load_dataset("synthetic:3x6x6:4:500", seed=3).train.tensors[0], xtr)
    with pytest.raises(CrossnasError):
        load_dataset("synthetic:3x6:4")
    with pytest.raises(CrossnasError):
        load_dataset("imagenet")


def _write_idx(path, arr: np.ndarray, gz: bool):
    header = struct.pack(">BBBB", 0, 0, 0x08, arr.ndim) + b"".join(struct.pack(">I", s) for s in arr.shape)
    data = header + arr.astype(np.uint8).tobytes()
    (gzip.open if gz else open)(path, "wb").write(data)


def test_idx_parser(tmp_path):
    a = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    _write_idx(tmp_path / "a-idx3-ubyte", a, gz=False)
    _write_idx(tmp_path / "a-idx3-ubyte.gz", a, gz=True)
    assert np.array_equal(read_idx(tmp_path / "a-idx3-ubyte"), a)
    assert np.array_equal(read_idx(tmp_path / "a-idx3-ubyte.gz"), a)
    (tmp_path / "bad").write_bytes(b"\x01\x02\x03\x04")
    with pytest.raises(CrossnasError):
        read_idx(tmp_path / "bad")


def test_fashion_mnist_from_idx(tmp_path):
    rng = np.random.default_rng(0)
    xtr, ytr = rng.integers(0, 256, (50, 28, 28)), rng.integers(0, 10, 50)
    xte, yte = rng.integers(0, 256, (10, 28, 28)), rng.integers(0, 10, 10)
    _write_idx(tmp_path / "train-images-idx3-ubyte.gz", xtr, True)
    _write_idx(tmp_path / "train-labels-idx1-ubyte.gz", ytr, True)
    _write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", xte, True)
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", yte, True)
    d = load_dataset("fashion-mnist", root=tmp_path, val_fraction=0.2)
    assert d.sizes() == {"train": 40, "val": 10, "test": 10}
    assert (d.in_channels, d.input_size, d.num_classes) == (1, 28, 10)
    assert np.array_equal(d.test.tensors[1].numpy(), yte)  # official test set is the test split
    _disjoint(d)
    with pytest.raises(CrossnasError, match="dataset-fashion-mnist"):
        load_dataset("fashion-mnist", root=tmp_path / "missing")


def _cifar_batch(rng, n, label_key, classes):
    return {
        b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
        label_key: rng.integers(0, classes, n).tolist(),
        b"batch_label": b"x",
    }


def test_cifar10_archive(tmp_path):
    rng = np.random.default_rng(0)
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    batches = [_cifar_batch(rng, 8, b"labels", 10) for _ in range(6)]
    for i, b in enumerate(batches[:5]):
        (folder / f"data_batch_{i + 1}").write_bytes(pickle.dumps(b))
    (folder / "test_batch").write_bytes(pickle.dumps(batches[5]))
    d = load_dataset("cifar10", root=tmp_path, val_fraction=0.25, seed=1)
    assert d.sizes() == {"train": 30, "val": 10, "test": 8}
    assert (d.in_channels, d.input_size, d.num_classes) == (3, 32, 10)
    _disjoint(d)
    # the image layout is channel-major rows of 1024 (R, G, B planes)
    raw = batches[5][b"data"][0].reshape(3, 32, 32).astype(np.float32) / 255.0
    std = np.array(d.std)[:, None, None]
    got = d.test.tensors[0][0].numpy() * std + np.array(d.mean)[:, None, None]
    assert np.allclose(got, raw, atol=1e-5)
    assert d.test.tensors[1].tolist() == batches[5][b"labels"]


def test_cifar100_archive_and_missing(tmp_path):
    rng = np.random.default_rng(0)
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    (folder / "train").write_bytes(pickle.dumps(_cifar_batch(rng, 20, b"fine_labels", 100)))
    (folder / "test").write_bytes(pickle.dumps(_cifar_batch(rng, 5, b"fine_labels", 100)))
    d = load_dataset("cifar100", root=tmp_path)
    assert d.sizes() == {"train": 18, "val": 2, "test": 5} and d.num_classes == 100
    with pytest.raises(CrossnasError, match="cifar.html"):
        load_dataset("cifar10", root=tmp_path)
