"""Dataset registry: a config name → a loader returning an ``ArrayDataset`` (NumPy arrays, offline).

Loaders only read or generate arrays; splitting, normalization and device placement are the
DataModule's job, so every dataset gets them the same way.

A loader registers by being in a module of this package that says ``@DATASETS.register``
(``embedded.py``, ``files.py``, or a new file next to them): ``_discover`` imports each such module,
so no import line is needed. What an entry declares: ``task``, ``kind``, ``accepts`` (its
``data.dataset.*`` keys, and ``root`` for ``data.root``); ``reads``, the keys it reads a path from
(``root`` is ``data.root``, any other key is ``data.dataset.<key>``; default ``("root",)`` when it
accepts ``root``). For its tests (tests/test_datasets.py): ``example``, a function
``directory -> kwargs`` that writes a tiny sample of its files there and returns the keyword
arguments that load it (needed by a dataset that reads files; a generated one may use it for a
scratch directory), and ``expect``, a dict of what that load gives: ``shape`` (one sample),
``outputs`` (classes, or regression targets), ``test_split`` (whether it comes with one). Without
``expect`` an entry still gets the generic checks (its task and kind, dtypes, labels in range).
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np

from core.errors import ConfigError
from core.registry import Entry, Registry

DATASETS = Registry("dataset", key="data.dataset")

TASKS = ("classification", "regression")
KINDS = ("tabular", "image", "signal", "sequence")


@dataclass
class ArrayDataset:
    x: np.ndarray  # (N, *input_shape) float32
    y: np.ndarray  # (N,) int64 class labels, or (N, k) float32 regression targets
    task: str  # one of TASKS
    kind: str  # one of KINDS: what a model sees (tabular vector, C×H×W image, C×L signal, L×F sequence)
    num_classes: Optional[int] = None  # classification only
    x_test: Optional[np.ndarray] = None  # a test split that comes with the dataset, kept as is
    y_test: Optional[np.ndarray] = None
    extras: dict[str, Any] = field(default_factory=dict)  # e.g. a regression set's ground-truth function

    def __post_init__(self):
        assert self.task in TASKS and self.kind in KINDS, (self.task, self.kind)
        assert len(self.x) == len(self.y), f"x has {len(self.x)} samples, y has {len(self.y)}"
        assert self.x_test is None or self.x_test.shape[1:] == self.x.shape[1:], (self.x.shape, self.x_test.shape)
        if self.task == "classification":
            assert self.y.ndim == 1 and self.num_classes, "classification needs (N,) labels and num_classes"
        else:
            assert self.y.ndim == 2, f"regression targets must be (N, k), got {self.y.shape}"

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x.shape[1:])


def load(name: str, **kwargs: Any) -> ArrayDataset:
    """Load dataset ``name``; its keyword arguments are checked against what the entry accepts."""
    make = DATASETS.partial(name, **kwargs)
    try:
        return make()
    except (ValueError, TypeError) as exc:
        if isinstance(exc, ConfigError):
            raise
        # e.g. scikit-learn refusing a generator's argument: a setting of data.dataset, said in one line
        given = " ".join(f"data.dataset.{k}={v!r}" for k, v in kwargs.items())
        raise ConfigError(f"data={name} {given}: refused by the dataset's generator: {' '.join(str(exc).split())}") from exc


def reads(entry: Entry) -> tuple[str, ...]:
    """The keyword arguments ``entry`` reads a path from (its ``reads`` declaration; without one,
    ``root`` when it accepts it): ``root`` is ``data.root``, any other ``data.dataset.<key>``."""
    declared = entry.info.get("reads")
    if declared is not None:
        return tuple(declared)
    return ("root",) if "root" in (entry.info.get("accepts") or ()) else ()


def root_kwargs(entry: Entry, root: Optional[str]) -> dict[str, str]:
    """The loader keyword ``data.root`` sets for dataset ``entry``: ``{"root": root}`` when it reads
    ``data.root``, nothing when ``root`` is None; otherwise a one-line error naming the key, the
    value, where this dataset reads its files (if it does) and which datasets read ``data.root``."""
    if root is None:
        return {}
    keys = reads(entry)
    if "root" in keys:
        return {"root": root}
    readers = ", ".join(e.name for e in DATASETS if "root" in reads(e)) or "none"
    if keys:
        where = " / ".join(f"data.dataset.{k}" for k in keys)
        raise ConfigError(
            f"data.root={root!r}: dataset {entry.name!r} reads its files from {where}, not data.root; set {where} "
            f"(data.root is read by: {readers})"
        )
    raise ConfigError(f"data.root={root!r}: dataset {entry.name!r} does not read files; data.root is read by: {readers}")


def _discover() -> None:
    """Import every module of this package whose source registers a dataset (says
    ``DATASETS.register``). Only those: reading a few small files is cheap, importing the DataModule
    (Lightning) to find out would not be, and it imports this module."""
    here = Path(__file__).parent
    for module in pkgutil.iter_modules([str(here)]):
        path = here / f"{module.name}.py"
        if not module.ispkg and module.name != "datasets" and path.is_file() and "DATASETS.register" in path.read_text(encoding="utf-8"):
            importlib.import_module(f"{__package__}.{module.name}")


_discover()
