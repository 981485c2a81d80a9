"""The user's own data: an .npz file, a folder of images (one sub-folder per class) or a Python factory.

Each reader returns `Arrays`: float32 images (N, C, H, W) in 0..1 (a factory's values are kept as given),
int64 labels, the class count, and where the test split came from. `loaders._finish` then carves the
validation split from train by the seeded rule and normalizes with train statistics, as for built-ins.
Every malformed input is a CrossnasError naming the file and what was expected.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from crossnas.errors import CrossnasError

SOURCES = ("npz", "folder", "python")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
_GRAY_MODES = ("1", "L", "LA", "I", "I;16", "F")


@dataclass
class Arrays:
    xtr: np.ndarray
    ytr: np.ndarray
    xte: np.ndarray
    yte: np.ndarray
    num_classes: int
    itr: np.ndarray | None = None
    ite: np.ndarray | None = None


def _test_split(x, y, test_fraction: float, seed: int) -> Arrays:
    """A seeded test split of one pool (the rule digits and synthetic data use)."""
    from crossnas.data.loaders import _split_idx

    if not 0 < test_fraction < 1:
        raise CrossnasError(f"data.test_fraction: expected 0 < value < 1, got {test_fraction}")
    tr, te = _split_idx(len(x), test_fraction, np.random.default_rng(seed + 1_000_003))
    return Arrays(x[tr], y[tr], x[te], y[te], 0, itr=tr, ite=te)


def _labels(y: np.ndarray, n: int, where: str, num_classes: int | None = None) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 1 or len(y) != n:
        raise CrossnasError(f"{where}: expected {n} labels in a 1-D array (one per image), got shape "
                            f"{tuple(y.shape)}")
    if not (np.issubdtype(y.dtype, np.integer) or (y.size and np.all(np.mod(y, 1) == 0))):
        raise CrossnasError(f"{where}: expected integer class labels, got dtype {y.dtype}")
    y = y.astype(np.int64)
    hi = num_classes if num_classes is not None else None
    if y.size and (y.min() < 0 or (hi is not None and y.max() >= hi)):
        bound = f"0..{hi - 1}" if hi is not None else ">= 0"
        raise CrossnasError(f"{where}: labels out of range: expected {bound}, got "
                            f"{int(y.min())}..{int(y.max())}")
    return y


def _layout(x: np.ndarray, layout: str, where: str) -> np.ndarray:
    """Images as (N, C, H, W): (N, H, W) gets one channel; `auto` takes the smaller of axes 1 and 3 as C."""
    if x.ndim == 3:
        return x[:, None]
    if x.ndim != 4:
        raise CrossnasError(f"{where}: expected images of shape (N, C, H, W), (N, H, W, C) or (N, H, W), "
                            f"got {tuple(x.shape)}")
    if layout == "auto":
        if x.shape[1] == x.shape[3]:
            raise CrossnasError(f"{where}: layout of shape {tuple(x.shape)} is ambiguous; set data.layout to "
                                "nchw or nhwc")
        layout = "nchw" if x.shape[1] < x.shape[3] else "nhwc"
    return x if layout == "nchw" else x.transpose(0, 3, 1, 2)


def _pixels(x: np.ndarray, where: str) -> np.ndarray:
    """uint8 -> /255; floats kept; anything else refused."""
    if x.dtype == np.uint8:
        return x.astype(np.float32) / 255.0
    if np.issubdtype(x.dtype, np.floating):
        if not np.all(np.isfinite(x)):
            raise CrossnasError(f"{where}: images hold NaN or infinite values")
        return x.astype(np.float32)
    raise CrossnasError(f"{where}: expected uint8 (0..255) or float images, got dtype {x.dtype}")


def _same_shape(a: np.ndarray, b: np.ndarray, where: str) -> None:
    if a.shape[1:] != b.shape[1:]:
        raise CrossnasError(f"{where}: mismatched image sizes: train images are {_dims(a.shape[1:])}, test "
                            f"images {_dims(b.shape[1:])} (C x H x W)")


def _dims(shape) -> str:
    return "x".join(str(int(s)) for s in shape)


def read_npz(path: str | Path, *, layout: str = "auto", test_fraction: float | None = None,
             seed: int = 0) -> Arrays:
    """Arrays x/y (a seeded test split of `test_fraction`, default 0.2) or x_train/y_train/x_test/y_test."""
    path = Path(path)
    if not path.is_file():
        raise CrossnasError(f"data.path: {path}: file not found")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except Exception as e:  # noqa: BLE001 - numpy raises many kinds for a damaged file
        raise CrossnasError(f"{path}: not a readable .npz ({e.__class__.__name__}: {e})") from None
    keys = set(arrays)
    split = {"x_train", "y_train", "x_test", "y_test"}
    if split <= keys:
        if test_fraction is not None:
            raise CrossnasError(f"{path}: data.test_fraction is only for an npz with x/y; this one has its "
                                "own x_test/y_test")
        xtr = _pixels(_layout(arrays["x_train"], layout, f"{path}: x_train"), f"{path}: x_train")
        xte = _pixels(_layout(arrays["x_test"], layout, f"{path}: x_test"), f"{path}: x_test")
        _same_shape(xtr, xte, str(path))
        a = Arrays(xtr, _labels(arrays["y_train"], len(xtr), f"{path}: y_train"), xte,
                   _labels(arrays["y_test"], len(xte), f"{path}: y_test"), 0)
    elif {"x", "y"} <= keys:
        x = _pixels(_layout(arrays["x"], layout, f"{path}: x"), f"{path}: x")
        a = _test_split(x, _labels(arrays["y"], len(x), f"{path}: y"),
                        0.2 if test_fraction is None else test_fraction, seed)
    else:
        raise CrossnasError(f"{path}: expected arrays x and y, or x_train, y_train, x_test and y_test; "
                            f"found {', '.join(sorted(keys)) or 'none'}")
    return _with_classes(a, str(path))


def _with_classes(a: Arrays, where: str) -> Arrays:
    a.num_classes = int(max(a.ytr.max(initial=0), a.yte.max(initial=0))) + 1
    if len(a.xtr) < 2 or len(a.xte) < 1:
        raise CrossnasError(f"{where}: expected at least 2 training and 1 test image, got {len(a.xtr)} and "
                            f"{len(a.xte)}")
    if len(np.unique(a.ytr)) < 2:
        raise CrossnasError(f"{where}: expected at least 2 classes in the training labels, got "
                            f"{len(np.unique(a.ytr))}")
    return a


def _size_hw(size: int | tuple[int, int] | list | None) -> tuple[int, int] | None:
    if size is None:
        return None
    return (int(size), int(size)) if isinstance(size, int) else (int(size[0]), int(size[1]))


def read_folder(path: str | Path, *, size=None, test_fraction: float | None = None, seed: int = 0) -> Arrays:
    """One sub-folder per class (sorted names are classes 0, 1, ...) of PNG/JPEG images, read with Pillow;
    resized to `size` (H or (H, W)) when given, else every image must have one size. Grayscale when every
    image is, RGB otherwise."""
    from PIL import Image, UnidentifiedImageError

    root = Path(path)
    if not root.is_dir():
        raise CrossnasError(f"data.path: {root}: folder not found")
    classes = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(classes) < 2:
        raise CrossnasError(f"{root}: expected one sub-folder per class (at least 2), found {len(classes)}")
    files: list[tuple[Path, int]] = []
    for label, cdir in enumerate(classes):
        found = sorted(f for f in cdir.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
        if not found:
            raise CrossnasError(f"{cdir}: expected PNG or JPEG images ({', '.join(IMAGE_SUFFIXES)}), "
                                "found none")
        files += [(f, label) for f in found]
    hw = _size_hw(size)
    images = []
    for f, _ in files:
        try:
            with Image.open(f) as im:
                im.load()
                images.append(im.copy())
        except (OSError, UnidentifiedImageError) as e:
            raise CrossnasError(f"{f}: unreadable image ({e.__class__.__name__}: {e})") from None
    gray = all(im.mode in _GRAY_MODES for im in images)
    first = images[0].size
    arrs = []
    for (f, _), im in zip(files, images):
        if hw is None and im.size != first:
            raise CrossnasError(f"{f}: mismatched image sizes: {im.size[1]}x{im.size[0]}, but "
                                f"{files[0][0].name} is {first[1]}x{first[0]} (H x W); set data.size to "
                                "resize")
        im = im.convert("L" if gray else "RGB")
        if hw is not None and im.size != (hw[1], hw[0]):
            im = im.resize((hw[1], hw[0]), Image.BILINEAR)
        a = np.asarray(im, dtype=np.uint8)
        arrs.append(a[None] if gray else a.transpose(2, 0, 1))
    x = np.stack(arrs).astype(np.float32) / 255.0
    y = np.array([lab for _, lab in files], dtype=np.int64)
    return _with_classes(_test_split(x, y, 0.2 if test_fraction is None else test_fraction, seed), str(root))


def _materialize(ds: Any, where: str) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) arrays of a map-style dataset of (image, label) items."""
    import torch

    try:
        n = len(ds)
        items = [ds[i] for i in range(n)]
    except Exception as e:  # noqa: BLE001 - user dataset
        raise CrossnasError(f"{where}: cannot read the dataset ({e.__class__.__name__}: {e}); expected a "
                            "map-style Dataset of (image, label)") from None
    if n == 0:
        raise CrossnasError(f"{where}: the dataset is empty")
    xs, ys = [], []
    for i, item in enumerate(items):
        if not isinstance(item, tuple | list) or len(item) != 2:
            raise CrossnasError(f"{where}: item {i}: expected (image, label), got {type(item).__name__}")
        x = item[0].detach().cpu().numpy() if isinstance(item[0], torch.Tensor) else np.asarray(item[0])
        x = x[None] if x.ndim == 2 else x
        if x.ndim != 3 or (xs and x.shape != xs[0].shape):
            want = _dims(xs[0].shape) if xs else "C x H x W"
            raise CrossnasError(f"{where}: item {i}: mismatched image sizes: expected {want}, got "
                                f"{_dims(x.shape)}")
        xs.append(x)
        ys.append(int(item[1]))
    return _pixels(np.stack(xs), where), np.asarray(ys, dtype=np.int64)


def read_python(factory: str, *, seed: int = 0) -> Arrays:
    """`path.py:function` returning {"train": Dataset, "test": Dataset, "num_classes": int}; called with
    `seed` when it takes one."""
    from crossnas.usercode import call_with_matching, load_callable

    fn = load_callable(factory, "data.factory")
    try:
        out = call_with_matching(fn, {"seed": seed}, {}, f"data.factory {factory}",
                                 hint="give {name} a default")
    except CrossnasError:
        raise
    except Exception as e:  # noqa: BLE001 - user code
        raise CrossnasError(f"data.factory {factory}: raised {e.__class__.__name__}: {e}") from None
    if not isinstance(out, dict) or not {"train", "test", "num_classes"} <= set(out):
        got = sorted(out) if isinstance(out, dict) else type(out).__name__
        raise CrossnasError(f"data.factory {factory}: expected a dict with 'train', 'test' and "
                            f"'num_classes', got {got}")
    k = out["num_classes"]
    if not isinstance(k, int) or isinstance(k, bool) or k < 2:
        raise CrossnasError(f"data.factory {factory}: num_classes: expected an integer >= 2, got {k!r}")
    xtr, ytr = _materialize(out["train"], f"data.factory {factory}: train")
    xte, yte = _materialize(out["test"], f"data.factory {factory}: test")
    _same_shape(xtr, xte, f"data.factory {factory}")
    ytr = _labels(ytr, len(xtr), f"data.factory {factory}: train", k)
    yte = _labels(yte, len(xte), f"data.factory {factory}: test", k)
    return Arrays(xtr, ytr, xte, yte, k)


def parse_data_spec(spec: str) -> dict[str, Any]:
    """A command line `--data` value as a config `data` mapping: a built-in name, `npz:FILE`,
    `folder:DIR` or `python:FILE.py:FUNCTION`."""
    kind, sep, rest = spec.partition(":")
    if sep and kind in ("npz", "folder") and rest:
        return {"name": kind, "path": rest}
    if sep and kind == "python" and rest:
        return {"name": "python", "factory": rest}
    return {"name": spec}


def check_data_section(d, known: list[str], where: str) -> None:
    """The `data` section names a known dataset and the fields its source needs (before any work)."""
    spec = parse_data_spec(d.name)
    kind = spec["name"]
    builtin = kind in known or kind.startswith("synthetic:")
    if not builtin and kind not in SOURCES:
        raise CrossnasError(f"{where}: data.name: expected one of {', '.join(known)}, got {d.name!r}")
    need = {"npz": "path", "folder": "path", "python": "factory"}.get(kind)
    if need and not (spec.get(need) or getattr(d, need)):
        raise CrossnasError(f"{where}: data.{need}: required for data name {kind}")
    if need == "factory" and not (spec.get("factory") or d.factory or "").rsplit(":", 1)[0].endswith(".py"):
        raise CrossnasError(f"{where}: data.factory: expected path/to/file.py:FUNCTION, got {d.factory!r}")
    for field, only in (("path", ("npz", "folder")), ("factory", ("python",)), ("size", ("folder",))):
        if getattr(d, field) is not None and kind not in only:
            raise CrossnasError(f"{where}: data.{field}: only for data name {' or '.join(only)}, not {kind}")
