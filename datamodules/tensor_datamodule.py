"""A DataModule for datasets small enough to live as tensors on the training device.

Loads a registered dataset once (offline), splits it (stratified, seeded), normalizes with
training-split statistics, moves every split to the trainer's device in ``setup`` and serves
batches by indexing (``DeviceBatchLoader``). ``input_shape``, ``num_outputs`` and ``task`` are
available before training, so the network can size itself to the data.
"""
from __future__ import annotations

from typing import Any, Optional

import numpy as np
import pytorch_lightning as pl
import torch

from datamodules.datasets import DATASETS, ArrayDataset
from datamodules.device_loader import DeviceBatchLoader
from datamodules.normalization import NORMALIZERS, apply_normalizer, fit_normalizer
from datamodules.splits import holdout_split

SPLITS = ("train", "val", "test")


class TensorDataModule(pl.LightningDataModule):
    def __init__(
        self,
        name: str,
        batch_size: int = 64,
        eval_batch_size: int = 1024,
        val_fraction: float = 0.1,
        test_fraction: float = 0.2,
        normalize: str = "zscore",
        split_seed: int = 0,
        seed: int = 0,
        dataset_kwargs: Optional[dict[str, Any]] = None,
    ):
        super().__init__()
        self.entry = DATASETS.get(name)  # fails early, listing the datasets
        if normalize not in NORMALIZERS:
            raise ValueError(f"data.normalize={normalize!r}: unknown; valid: {', '.join(NORMALIZERS)}")
        for key, value in (("batch_size", batch_size), ("eval_batch_size", eval_batch_size)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"data.{key}={value!r}: must be an integer >= 1")
        self.name, self.batch_size, self.eval_batch_size = self.entry.name, batch_size, eval_batch_size
        self.val_fraction, self.test_fraction, self.normalize = val_fraction, test_fraction, normalize
        self.split_seed, self.seed = split_seed, seed
        self.dataset_kwargs = dict(dataset_kwargs or {})
        self._arrays: Optional[dict[str, tuple[np.ndarray, np.ndarray]]] = None
        self._info: Optional[ArrayDataset] = None
        self._tensors: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    # ---------------------------------------------------------------- what the model needs to know
    def _load(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        if self._arrays is None:
            ds: ArrayDataset = self.entry.factory(**self.dataset_kwargs)
            labels = ds.y if ds.task == "classification" else None
            if ds.x_test is not None:
                if self.test_fraction:
                    raise ValueError(f"data.test_fraction={self.test_fraction}: dataset {self.name!r} comes with its own test split; set it to 0")
                train, val, _ = holdout_split(len(ds.x), self.val_fraction, 0.0, self.split_seed, labels)
                test_xy = (ds.x_test, ds.y_test)
            else:
                train, val, test = holdout_split(len(ds.x), self.val_fraction, self.test_fraction, self.split_seed, labels)
                test_xy = (ds.x[test], ds.y[test])
            shift, scale = fit_normalizer(ds.x[train], self.normalize)
            raw = {"train": (ds.x[train], ds.y[train]), "val": (ds.x[val], ds.y[val]), "test": test_xy}
            self._arrays = {k: (apply_normalizer(x, shift, scale), y) for k, (x, y) in raw.items()}
            self._info = ds
        return self._arrays

    @property
    def info(self) -> ArrayDataset:
        self._load()
        return self._info

    @property
    def task(self) -> str:
        return self.info.task

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self.info.input_shape

    @property
    def num_outputs(self) -> int:
        return self.info.num_classes if self.task == "classification" else self.info.y.shape[1]

    def split_sizes(self) -> dict[str, int]:
        return {k: len(y) for k, (_, y) in self._load().items()}

    # ---------------------------------------------------------------- Lightning hooks
    def setup(self, stage: Optional[str] = None) -> None:
        device = self.trainer.strategy.root_device if self.trainer is not None else torch.device("cpu")
        self._tensors = {k: (torch.from_numpy(x).to(device), torch.from_numpy(y).to(device)) for k, (x, y) in self._load().items()}

    def _loader(self, split: str, train: bool) -> DeviceBatchLoader:
        x, y = self._tensors[split]
        rank, world = (self.trainer.global_rank, self.trainer.world_size) if self.trainer is not None else (0, 1)
        return DeviceBatchLoader(
            (x, y), self.batch_size if train else self.eval_batch_size, shuffle=train, seed=self.seed, rank=rank, world_size=world
        )

    def train_dataloader(self) -> DeviceBatchLoader:
        return self._loader("train", train=True)

    def val_dataloader(self):
        return self._loader("val", train=False) if len(self._tensors["val"][1]) else []

    def test_dataloader(self) -> DeviceBatchLoader:
        return self._loader("test", train=False)
