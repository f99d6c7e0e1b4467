"""Dataset registry: a config name → a loader returning an ``ArrayDataset`` (NumPy arrays, offline).

Loaders only read or generate arrays; splitting, normalization and device placement are the
DataModule's job, so every dataset gets them the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

from core.errors import ConfigError
from core.registry import Registry

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


from datamodules import embedded, files  # noqa: E402,F401  (register the embedded, generated and file datasets)
