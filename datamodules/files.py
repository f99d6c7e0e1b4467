"""Datasets read from local files in their standard formats, under ``data.root`` (never downloaded).

- ``mnist``, ``fashion_mnist``: the four IDX files (``train-images-idx3-ubyte`` …), gzipped or not.
- ``cifar10``: ``data_batch_1`` … ``data_batch_5`` and ``test_batch`` (python pickles), in
  ``root`` or ``root/cifar-10-batches-py``; ``cifar100``: ``train`` and ``test`` in ``root`` or
  ``root/cifar-100-python`` (fine labels). These files are Python pickles: they are read by an
  unpickler that admits only what the format holds (dicts, lists, bytes, numbers, numpy arrays),
  so a crafted file is refused with one line and its payload never runs.
- ``image_folder``: ``root/<class>/<image>`` (PNG/JPEG/BMP…), classes in sorted order; with
  ``root/train/<class>/…`` and ``root/test/<class>/…`` the test split is kept.

A missing or malformed file raises an error that names the file expected and the layout. Each
entry declares ``reads=("root",)`` and, for its tests, an ``example`` that writes a tiny sample in
its exact format (``write_idx``, ``write_cifar``, ``write_image_folder``) and, as ``expect``, the
shape and classes of that sample (see datamodules/datasets.py).
"""

from __future__ import annotations

import codecs
import gzip
import pickle
import struct
from pathlib import Path
from typing import Optional

import numpy as np

from core.errors import ConfigError
from datamodules.datasets import DATASETS, ArrayDataset

IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
IDX_LAYOUT = "data.root/{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]"


class DataFileError(ConfigError):
    """A dataset file that is missing or not in its format (data.root points at it: a setting's error)."""


def _root(root: Optional[str], name: str, layout: str) -> Path:
    if not root:
        raise DataFileError(f"data.root: missing; dataset {name!r} reads local files laid out as {layout}")
    path = Path(root).expanduser()
    if not path.is_dir():
        raise DataFileError(f"data.root={str(root)!r}: not a directory; dataset {name!r} expects {layout}")
    return path


def _find(root: Path, candidates: list[str], layout: str) -> Path:
    for c in candidates:
        if (root / c).is_file():
            return root / c
    raise DataFileError(f"{root / candidates[0]}: missing (expected layout: {layout})")


def read_idx(path: Path) -> np.ndarray:
    """An IDX array (the MNIST format): magic 0x0000 dtype ndim, big-endian int32 dims, data."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
        zero, dtype, ndim = struct.unpack(">HBB", raw[:4])
        if zero != 0 or dtype != 0x08:  # 0x08: unsigned byte, the only type MNIST uses
            raise DataFileError(f"{path}: not an IDX file of unsigned bytes (magic {raw[:4].hex()})")
        dims = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])
        data = np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim)
        if data.size != int(np.prod(dims)):
            raise DataFileError(f"{path}: header says {dims} = {int(np.prod(dims))} bytes, file has {data.size}")
        return data.reshape(dims)
    except (OSError, struct.error, EOFError) as exc:
        raise DataFileError(f"{path}: unreadable as IDX ({exc})") from exc


def write_idx(path: Path, array: np.ndarray, gz: bool = False) -> None:
    """``array`` as an IDX file of unsigned bytes (gzipped to ``path.gz`` with ``gz``): what ``read_idx`` reads."""
    raw = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape) + array.astype(np.uint8).tobytes()
    with (gzip.open if gz else open)(str(path) + (".gz" if gz else ""), "wb") as f:
        f.write(raw)


def _idx_example(gz: bool):
    def write(root: Path) -> dict[str, str]:
        """30 training and 10 test 28×28 images in the four IDX files, labels cycling through 0–9."""
        rng = np.random.default_rng(0)
        for prefix, n in (("train", 30), ("t10k", 10)):
            write_idx(root / f"{prefix}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28)), gz)
            write_idx(root / f"{prefix}-labels-idx1-ubyte", np.arange(n) % 10, gz)
        return {"root": str(root)}

    return write


IDX_EXPECT = {"shape": (1, 28, 28), "outputs": 10, "test_split": True}


def _idx_dataset(name: str, root: Optional[str]) -> ArrayDataset:
    base = _root(root, name, IDX_LAYOUT)
    parts = {}
    for split, (images, labels) in IDX_FILES.items():
        x = read_idx(_find(base, [images, images + ".gz"], IDX_LAYOUT))
        y = read_idx(_find(base, [labels, labels + ".gz"], IDX_LAYOUT))
        if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
            raise DataFileError(f"{base}: {split} images {x.shape} and labels {y.shape} do not match (expected (N, H, W) and (N,))")
        parts[split] = (x[:, None].astype(np.float32), y.astype(np.int64))  # (N, 1, 28, 28)
    (x, y), (xt, yt) = parts["train"], parts["test"]
    return ArrayDataset(x=x, y=y, task="classification", kind="image", num_classes=10, x_test=xt, y_test=yt)


@DATASETS.register(
    "mnist", task="classification", kind="image", accepts=("root",), reads=("root",), example=_idx_example(gz=True), expect=IDX_EXPECT
)
def mnist(root: Optional[str] = None) -> ArrayDataset:
    return _idx_dataset("mnist", root)


@DATASETS.register(
    "fashion_mnist",
    task="classification",
    kind="image",
    accepts=("root",),
    reads=("root",),
    example=_idx_example(gz=False),
    expect=IDX_EXPECT,
)
def fashion_mnist(root: Optional[str] = None) -> ArrayDataset:
    return _idx_dataset("fashion_mnist", root)


_RECONSTRUCT = np.zeros(1).__reduce__()[0]  # numpy's array reconstructor, wherever this numpy keeps it
_SCALAR = np.float64(0).__reduce__()[0]
# Every global a CIFAR python batch refers to (numpy 1.x files name numpy.core, numpy 2.x numpy._core;
# _codecs.encode is how protocol 2 writes bytes). Anything else is refused before it is looked up.
CIFAR_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy.core.multiarray", "scalar"): _SCALAR,
    ("numpy._core.multiarray", "scalar"): _SCALAR,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): codecs.encode,
}


class RefusedPickle(pickle.UnpicklingError):
    """A pickle that names a global outside what its format holds."""


class _DataUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        try:
            return CIFAR_GLOBALS[(module, name)]
        except KeyError:
            raise RefusedPickle(f"{module}.{name}") from None


def _unpickle(path: Path, label_key: bytes) -> tuple[np.ndarray, np.ndarray]:
    try:
        with open(path, "rb") as f:
            d = _DataUnpickler(f, encoding="bytes").load()
        x = np.asarray(d[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32)  # rows are R, G, B planes of 32×32
        y = np.asarray(d[label_key], dtype=np.int64)
    except RefusedPickle as exc:
        raise DataFileError(
            f"{path}: refused: it asks to load {exc}, which a CIFAR python batch never holds (only dicts, lists, "
            "bytes, numbers and numpy arrays are read; nothing in the file was run)"
        ) from exc
    except (OSError, pickle.UnpicklingError, KeyError, ValueError, EOFError, TypeError) as exc:
        raise DataFileError(f"{path}: not a CIFAR python batch with b'data' (N×3072 bytes) and {label_key!r} ({exc})") from exc
    if len(x) != len(y):
        raise DataFileError(f"{path}: {len(x)} images but {len(y)} labels")
    return x.astype(np.float32), y


def write_cifar(path: Path, images: np.ndarray, labels: list, label_key: bytes) -> None:
    """A CIFAR python batch: a pickled dict of b"data" (N×3072 bytes) and ``label_key`` (N labels)."""
    with open(path, "wb") as f:
        pickle.dump({b"data": images.astype(np.uint8).reshape(len(images), -1), label_key: labels}, f)


def _cifar_example(folder: Optional[str], batches: list[str], n: int, label_key: bytes, classes: int):
    def write(root: Path) -> dict[str, str]:
        """``n`` random images per batch (in ``root/folder`` when given), labels cycling through the
        classes as numpy integers (the scalars real batches hold)."""
        rng = np.random.default_rng(0)
        base = root / folder if folder else root
        base.mkdir(parents=True, exist_ok=True)
        for b in batches:
            write_cifar(base / b, rng.integers(0, 256, (n, 3072), dtype=np.uint8), list(np.arange(n) % classes), label_key)
        return {"root": str(root)}

    return write


def _cifar(name: str, root: Optional[str], folder: str, train: list[str], test: str, label_key: bytes, classes: int) -> ArrayDataset:
    layout = f"data.root[/{folder}]/{{{','.join(train)},{test}}}"
    base = _root(root, name, layout)
    if (base / folder).is_dir():
        base = base / folder
    xs, ys = zip(*(_unpickle(_find(base, [b], layout), label_key) for b in train))
    xt, yt = _unpickle(_find(base, [test], layout), label_key)
    return ArrayDataset(
        x=np.concatenate(xs), y=np.concatenate(ys), task="classification", kind="image", num_classes=classes, x_test=xt, y_test=yt
    )


@DATASETS.register(
    "cifar10",
    task="classification",
    kind="image",
    accepts=("root",),
    reads=("root",),
    example=_cifar_example("cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"], 20, b"labels", 10),
    expect={"shape": (3, 32, 32), "outputs": 10, "test_split": True},
)
def cifar10(root: Optional[str] = None) -> ArrayDataset:
    return _cifar("cifar10", root, "cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)], "test_batch", b"labels", 10)


@DATASETS.register(
    "cifar100",
    task="classification",
    kind="image",
    accepts=("root",),
    reads=("root",),
    example=_cifar_example(None, ["train", "test"], 200, b"fine_labels", 100),
    expect={"shape": (3, 32, 32), "outputs": 100, "test_split": True},
)
def cifar100(root: Optional[str] = None) -> ArrayDataset:
    return _cifar("cifar100", root, "cifar-100-python", ["train"], "test", b"fine_labels", 100)


IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}


def _read_folder(base: Path, size: Optional[tuple[int, int]], channels: int, classes: Optional[list[str]] = None):
    from PIL import Image

    found = sorted(d.name for d in base.iterdir() if d.is_dir())
    classes = classes or found
    if len(classes) < 2:
        raise DataFileError(f"{base}: found {len(found)} class folders; image_folder expects data.root/<class>/<image> with >= 2 classes")
    mode = {1: "L", 3: "RGB"}[channels]
    xs, ys = [], []
    for label, cls in enumerate(classes):
        for f in sorted((base / cls).iterdir()) if (base / cls).is_dir() else []:
            if f.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            try:
                with Image.open(f) as im:
                    im = im.convert(mode)
                    if size is None:
                        size = im.size
                    if im.size != tuple(size):
                        im = im.resize(tuple(size))
                    a = np.asarray(im, dtype=np.float32)
            except OSError as exc:
                raise DataFileError(f"{f}: not a readable image ({exc})") from exc
            xs.append(a.reshape(size[1], size[0], channels).transpose(2, 0, 1))  # (C, H, W)
            ys.append(label)
    if not xs:
        raise DataFileError(f"{base}: no images ({', '.join(sorted(IMAGE_SUFFIXES))}) under its class folders")
    return np.stack(xs), np.array(ys, np.int64), classes, size


def write_image_folder(root: Path, classes: list[str], per_class: int, size: tuple[int, int], seed: int = 0) -> None:
    """``per_class`` random RGB PNGs of ``size`` (width, height) in ``root/<class>/`` for each class."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for cls in classes:
        (root / cls).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(root / cls / f"{i}.png")


def _image_folder_example(root: Path) -> dict[str, str]:
    """Three classes of four 5×6 (width × height) PNGs."""
    write_image_folder(root, ["ant", "bee", "cat"], 4, (5, 6))
    return {"root": str(root)}


@DATASETS.register(
    "image_folder",
    task="classification",
    kind="image",
    accepts=("root", "image_size", "channels"),
    reads=("root",),
    example=_image_folder_example,
    expect={"shape": (3, 6, 5), "outputs": 3, "test_split": False},
)
def image_folder(root: Optional[str] = None, image_size: Optional[list[int]] = None, channels: int = 3) -> ArrayDataset:
    """Images in class folders. ``image_size`` [width, height] (default: the first image's size;
    others are resized to it); ``channels`` 1 (grey) or 3 (RGB)."""
    layout = "data.root/<class>/<image> or data.root/{train,test}/<class>/<image>"
    if channels not in (1, 3):
        raise DataFileError(f"data.dataset.channels={channels}: must be 1 or 3")
    base = _root(root, "image_folder", layout)
    size = tuple(image_size) if image_size else None
    if (base / "train").is_dir() and (base / "test").is_dir():
        x, y, classes, size = _read_folder(base / "train", size, channels)
        xt, yt, _, _ = _read_folder(base / "test", size, channels, classes)
        return ArrayDataset(
            x=x, y=y, task="classification", kind="image", num_classes=len(classes), x_test=xt, y_test=yt, extras={"classes": classes}
        )
    x, y, classes, _ = _read_folder(base, size, channels)
    return ArrayDataset(x=x, y=y, task="classification", kind="image", num_classes=len(classes), extras={"classes": classes})
