"""Loaders for digits, Fashion-MNIST (IDX), CIFAR-10/100 (python pickle archives) and synthetic data.

Every loader returns `DataSplits` with normalized float tensors (N, C, H, W) and int64 labels.
Splits are fixed by `seed` and disjoint. The test split is never used for selection: searches
score candidates on `val`; `test` is evaluated once at the end.
"""

from __future__ import annotations

import gzip
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import TensorDataset

from crossnas.errors import CrossnasError

FASHION_ROOTS = (
    "/usr/share/dataset-fashion-mnist",
    "/usr/share/fashion-mnist",
    "/usr/share/datasets/fashion-mnist",
    "/usr/share/data/fashion-mnist",
)
DEFAULT_ROOT = Path.home() / ".cache" / "crossnas" / "data"


@dataclass
class DataSplits:
    """Train/val/test datasets of (image, label); `mean`/`std` (per channel) were computed on train."""

    train: TensorDataset
    val: TensorDataset
    test: TensorDataset
    in_channels: int
    num_classes: int
    input_size: int
    name: str
    mean: tuple[float, ...]
    std: tuple[float, ...]
    indices: dict[str, np.ndarray] | None = None
    """Positions of each split's samples in the source pool (`train` and `val` index the same pool as each
    other; `test` indexes the test pool, which is the whole set for digits/synthetic)."""

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of one image; `input_size` is H (the search space takes square inputs)."""
        c, h, w = self.train.tensors[0].shape[1:]
        return int(c), int(h), int(w)

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train), "val": len(self.val), "test": len(self.test)}


def list_datasets() -> list[str]:
    return ["digits", "fashion-mnist", "cifar10", "cifar100", "synthetic:CxHxW:classes:n", "npz:FILE",
            "folder:DIR", "python:FILE.py:FUNCTION"]


# --- shared helpers -------------------------------------------------------------------------------
def _split_idx(n: int, frac: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    perm = rng.permutation(n)
    k = int(round(n * frac))
    return np.sort(perm[k:]), np.sort(perm[:k])


def _limit(x: np.ndarray, y: np.ndarray, i: np.ndarray, limit: int, rng: np.random.Generator):
    if limit >= len(x):
        return x, y, i
    idx = np.sort(rng.permutation(len(x))[:limit])
    return x[idx], y[idx], i[idx]


def _finish(
    name: str,
    xtr,
    ytr,
    xte,
    yte,
    *,
    seed: int,
    val_fraction: float,
    limit: int | None,
    num_classes: int,
    itr: np.ndarray | None = None,
    ite: np.ndarray | None = None,
) -> DataSplits:
    """x arrays (N, C, H, W) float in 0..1; carve val from train, normalize with train statistics."""
    if not 0 <= val_fraction < 1:
        raise CrossnasError(f"val_fraction: expected 0 <= value < 1, got {val_fraction}")
    rng = np.random.default_rng(seed)
    itr = np.arange(len(xtr)) if itr is None else itr
    ite = np.arange(len(xte)) if ite is None else ite
    tr, va = _split_idx(len(xtr), val_fraction, rng)
    xva, yva, iva = xtr[va], ytr[va], itr[va]
    xtr, ytr, itr = xtr[tr], ytr[tr], itr[tr]
    if limit is not None:
        xtr, ytr, itr = _limit(xtr, ytr, itr, limit, rng)
        xva, yva, iva = _limit(xva, yva, iva, max(1, limit // 5), rng)
        xte, yte, ite = _limit(xte, yte, ite, max(1, limit // 5), rng)
    axes = (0, 2, 3)
    mean = xtr.mean(axis=axes).astype(np.float32)
    std = np.maximum(xtr.std(axis=axes), 1e-6).astype(np.float32)

    def ds(x, y):
        xn = (x.astype(np.float32) - mean[None, :, None, None]) / std[None, :, None, None]
        return TensorDataset(torch.from_numpy(np.ascontiguousarray(xn)), torch.from_numpy(y.astype(np.int64)))

    return DataSplits(
        ds(xtr, ytr),
        ds(xva, yva),
        ds(xte, yte),
        in_channels=int(xtr.shape[1]),
        num_classes=int(num_classes),
        input_size=int(xtr.shape[2]),
        name=name,
        mean=tuple(float(m) for m in mean),
        std=tuple(float(s) for s in std),
        indices={"train": itr, "val": iva, "test": ite},
    )


# --- IDX ------------------------------------------------------------------------------------------
_IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | Path) -> np.ndarray:
    """Parse an IDX file (optionally gzipped) into a numpy array."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES:
        raise CrossnasError(f"{path}: not an IDX file (bad magic number)")
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    dtype = np.dtype(_IDX_TYPES[raw[2]])
    off = 4 + 4 * ndim
    count = int(np.prod(dims)) if dims else 1
    if len(raw) - off < count * dtype.itemsize:
        raise CrossnasError(f"{path}: IDX file truncated (expected {count} items of shape {dims})")
    return (
        np.frombuffer(raw, dtype=dtype, count=count, offset=off).reshape(dims).astype(dtype.newbyteorder("="))
    )


def _find_idx(root: Path, stem: str) -> Path | None:
    for cand in (stem, stem + ".gz", stem.replace("-idx", ".idx"), stem.replace("-idx", ".idx") + ".gz"):
        hits = sorted(root.rglob(cand))
        if hits:
            return hits[0]
    return None


def _fashion_roots(root: str | Path | None) -> list[Path]:
    if root is not None:
        return [Path(root)]
    out = [Path(r) for r in FASHION_ROOTS]
    share = Path("/usr/share")
    if share.is_dir():
        out += sorted(p for p in share.glob("*fashion*") if p.is_dir())
    out.append(DEFAULT_ROOT / "fashion-mnist")
    return out


def _load_fashion(root, **kw) -> DataSplits:
    stems = {
        "xtr": "train-images-idx3-ubyte",
        "ytr": "train-labels-idx1-ubyte",
        "xte": "t10k-images-idx3-ubyte",
        "yte": "t10k-labels-idx1-ubyte",
    }
    tried = _fashion_roots(root)
    for r in tried:
        if not r.is_dir():
            continue
        files = {k: _find_idx(r, s) for k, s in stems.items()}
        if all(files.values()):
            arr = {k: read_idx(p) for k, p in files.items()}
            xtr = arr["xtr"][:, None].astype(np.float32) / 255.0
            xte = arr["xte"][:, None].astype(np.float32) / 255.0
            return _finish(
                "fashion-mnist",
                xtr,
                arr["ytr"].astype(np.int64),
                xte,
                arr["yte"].astype(np.int64),
                num_classes=10,
                **kw,
            )
    raise CrossnasError(
        "fashion-mnist: IDX files (train-images-idx3-ubyte[.gz], ...) not found under "
        f"{', '.join(str(t) for t in tried)}; install Debian's `dataset-fashion-mnist` package or download"
        " the four files from https://github.com/zalandoresearch/fashion-mnist and pass root=<folder>"
    )


# --- CIFAR ----------------------------------------------------------------------------------------
def _unpickle(path: Path) -> dict:
    with open(path, "rb") as f:
        return pickle.load(f, encoding="bytes")


def _cifar_arrays(d: dict, label_key: bytes) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(d[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32).astype(np.float32) / 255.0
    return x, np.asarray(d[label_key], dtype=np.int64)


def _load_cifar(name: str, root, download: bool, **kw) -> DataSplits:
    root = Path(root) if root is not None else DEFAULT_ROOT
    folder = root / ("cifar-10-batches-py" if name == "cifar10" else "cifar-100-python")
    if not folder.is_dir() and download:
        try:
            import torchvision  # noqa: F401
        except ImportError:
            raise CrossnasError(
                f"{name}: download=True needs torchvision (pip install crossnas[vision])"
            ) from None
        from torchvision import datasets

        (datasets.CIFAR10 if name == "cifar10" else datasets.CIFAR100)(str(root), train=True, download=True)
    if not folder.is_dir():
        raise CrossnasError(
            f"{name}: {folder} not found; download the python version of the archive from "
            "https://www.cs.toronto.edu/~kriz/cifar.html and extract it under root, or pass download=True "
            "with torchvision installed"
        )
    try:
        if name == "cifar10":
            parts = [_cifar_arrays(_unpickle(folder / f"data_batch_{i}"), b"labels") for i in range(1, 6)]
            xtr = np.concatenate([p[0] for p in parts])
            ytr = np.concatenate([p[1] for p in parts])
            xte, yte = _cifar_arrays(_unpickle(folder / "test_batch"), b"labels")
            nc = 10
        else:
            xtr, ytr = _cifar_arrays(_unpickle(folder / "train"), b"fine_labels")
            xte, yte = _cifar_arrays(_unpickle(folder / "test"), b"fine_labels")
            nc = 100
    except FileNotFoundError as e:
        raise CrossnasError(f"{name}: archive in {folder} is incomplete: {e.filename} missing") from None
    return _finish(name, xtr, ytr, xte, yte, num_classes=nc, **kw)


# --- digits & synthetic ---------------------------------------------------------------------------
def _load_digits(*, seed: int, **kw) -> DataSplits:
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.images.astype(np.float32) / 16.0)[:, None]
    y = d.target.astype(np.int64)
    tr, te = _split_idx(len(x), 0.2, np.random.default_rng(seed + 1_000_003))
    return _finish("digits", x[tr], y[tr], x[te], y[te], num_classes=10, seed=seed, itr=tr, ite=te, **kw)


def _load_synthetic(spec: str, *, seed: int, **kw) -> DataSplits:
    """`synthetic:CxHxW:classes:n`: each class is a fixed random pattern; samples add Gaussian noise."""
    try:
        _, shape, classes, n = spec.split(":")
        c, h, w = (int(v) for v in shape.lower().split("x"))
        classes, n = int(classes), int(n)
        if min(c, h, w, classes, n) < 1:
            raise ValueError
    except ValueError:
        raise CrossnasError(
            f"dataset {spec!r}: expected synthetic:CxHxW:classes:n, e.g. synthetic:3x8x8:4:500"
        ) from None
    rng = np.random.default_rng(seed)
    protos = rng.random((classes, c, h, w)).astype(np.float32)
    y = rng.integers(0, classes, size=n).astype(np.int64)
    x = np.clip(protos[y] + 0.25 * rng.standard_normal((n, c, h, w)).astype(np.float32), 0, 1)
    tr, te = _split_idx(n, 0.2, rng)
    return _finish(spec, x[tr], y[tr], x[te], y[te], num_classes=classes, seed=seed, itr=tr, ite=te, **kw)


def load_dataset(
    name: str,
    *,
    root: str | Path | None = None,
    seed: int = 0,
    val_fraction: float = 0.1,
    limit: int | None = None,
    download: bool = False,
    path: str | Path | None = None,
    factory: str | None = None,
    layout: str = "auto",
    size: int | tuple[int, int] | None = None,
    test_fraction: float | None = None,
) -> DataSplits:
    """Load `name` as fixed seeded splits; `limit` caps train (val and test to limit // 5) for quick runs.

    digits/synthetic: a seeded 20% test split, then val from train; fashion-mnist/cifar: the official test
    set is the test split and val is carved from the official train set. The user's own data
    (`crossnas.data.sources`): `npz` (with `path`, `layout`, `test_fraction`), `folder` (with `path`,
    `size`, `test_fraction`) and `python` (with `factory`); the `--data` forms `npz:FILE`, `folder:DIR`
    and `python:FILE.py:FUNCTION` carry the path or factory in the name.
    """
    from crossnas.data.sources import SOURCES, parse_data_spec

    kw = {"seed": seed, "val_fraction": val_fraction, "limit": limit}
    spec = parse_data_spec(name)
    if spec["name"] in SOURCES:
        return _load_user(spec["name"], path=spec.get("path", path), factory=spec.get("factory", factory),
                          layout=layout, size=size, test_fraction=test_fraction, **kw)
    key = name.lower()
    if key == "digits":
        return _load_digits(**kw)
    if key in ("fashion-mnist", "fashion_mnist", "fashionmnist"):
        return _load_fashion(root, **kw)
    if key in ("cifar10", "cifar100"):
        return _load_cifar(key, root, download, **kw)
    if key.startswith("synthetic"):
        return _load_synthetic(name, **kw)
    raise CrossnasError(f"dataset {name!r} unknown; known: {', '.join(list_datasets())}")


def _load_user(kind: str, *, path, factory, layout: str, size, test_fraction, seed: int, **kw) -> DataSplits:
    from crossnas.data import sources

    if kind == "python":
        if not factory:
            raise CrossnasError("data.factory: expected path/to/file.py:FUNCTION for data name python")
        a, label = sources.read_python(factory, seed=seed), f"python:{factory}"
    else:
        if not path:
            what = "file" if kind == "npz" else "folder"
            raise CrossnasError(f"data.path: expected a {what} for data name {kind}")
        if kind == "npz":
            a = sources.read_npz(path, layout=layout, test_fraction=test_fraction, seed=seed)
        else:
            a = sources.read_folder(path, size=size, test_fraction=test_fraction, seed=seed)
        label = f"{kind}:{path}"
    return _finish(label, a.xtr, a.ytr, a.xte, a.yte, num_classes=a.num_classes, seed=seed, itr=a.itr,
                   ite=a.ite, **kw)
