"""A DataModule for array datasets: as tensors on the training device, or through a DataLoader.

``loader="device"`` (and ``"auto"`` while the training split is at most ``device_limit_mb``):

Loads a registered dataset once (offline), splits it (stratified holdout or a K-fold fold, then
an optional bootstrap resample of the training part), normalizes with training-split statistics,
moves every split to the trainer's device in ``setup`` and serves batches by indexing
(``DeviceBatchLoader``). The training loader alone augments and mixes, a whole epoch at a time on
the device (``TrainTransform``).

``loader="dataloader"`` (and ``"auto"`` above the limit, or when ``num_workers > 0`` asks for
workers): the splits stay in host memory and a ``torch.utils.data.DataLoader`` with workers and
pinned memory (on a GPU) serves them; Lightning shards it under DDP with a DistributedSampler;
augmentation and mixing then run per batch on the device, in ``on_after_batch_transfer``.
``input_shape``, ``num_outputs`` and ``task`` are known before training, so the network can size
itself to the data.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, TensorDataset

from core.errors import ConfigError
from core.rules import check_all
from datamodules.augment import policy_for
from datamodules.datasets import DATASETS, ArrayDataset, load, root_kwargs
from datamodules.device_loader import DeviceBatchLoader
from datamodules.mixing import MixConfig
from datamodules.normalization import apply_normalizer, fit_normalizer, reduce_axes
from datamodules.rules import RULES, check_loader, check_splits, val_fraction_of
from datamodules.splits import bootstrap_sample, holdout_split, kfold_split
from datamodules.train_transform import TrainTransform

FLIP_SAFE = ("cifar10", "cifar100", "image_folder")  # datasets whose mirror images keep their labels
SPLITS = ("train", "val", "test")


class TensorDataModule(pl.LightningDataModule):
    def __init__(
        self,
        name: str,
        batch_size: int = 64,
        eval_batch_size: int = 1024,
        val_fraction: Optional[float] = None,
        test_fraction: float = 0.2,
        normalize: str = "zscore",
        normalize_per: str = "auto",
        split_seed: int = 0,
        seed: int = 0,
        root: Optional[str] = None,
        dataset: Optional[dict[str, Any]] = None,
        kfold: Optional[dict[str, Any]] = None,
        bootstrap: Optional[int] = None,
        augment: bool = False,
        mix: MixConfig = MixConfig(),
        loader: str = "auto",
        num_workers: int = 0,
        device_limit_mb: float = 2048,
        seeds: Optional[list[int]] = None,
    ):
        super().__init__()
        self.entry = DATASETS.get(name)  # fails early, listing the datasets
        self.kfold = dict(kfold or {})
        k, index = self.kfold.get("k"), self.kfold.get("index", 0)
        given = {
            "batch_size": batch_size,
            "eval_batch_size": eval_batch_size,
            "val_fraction": val_fraction,
            "test_fraction": test_fraction,
            "normalize": normalize,
            "normalize_per": normalize_per,
            "split_seed": split_seed,
            "kfold.k": k,
            "kfold.index": index,
            "bootstrap": bootstrap,
            "loader": loader,
            "num_workers": num_workers,
            "device_limit_mb": device_limit_mb,
        }
        check_all(RULES, given, "data")
        val_fraction = val_fraction_of(val_fraction, k)
        check_splits(val_fraction, test_fraction, k, index)
        check_loader(loader, num_workers)
        if self.entry.info["task"] != "classification" and mix.active:
            raise ConfigError(
                f"regularization.mixup_alpha/cutmix_alpha: Mixup and CutMix need class labels; dataset {name!r} is a "
                f"{self.entry.info['task']} task"
            )
        self.name, self.batch_size, self.eval_batch_size = self.entry.name, batch_size, eval_batch_size
        self.val_fraction, self.test_fraction, self.normalize, self.normalize_per = val_fraction, test_fraction, normalize, normalize_per
        self.split_seed, self.seed, self.bootstrap = split_seed, seed, bootstrap
        self.dataset_kwargs = dict(dataset or {})
        self.dataset_kwargs.update(root_kwargs(self.entry, root))
        self.augment, self.mix = augment, mix
        self.loader, self.num_workers, self.device_limit_mb = loader, num_workers, device_limit_mb
        self.seeds = None if seeds is None else [int(s) for s in seeds]  # K members' training batches at once (member_loader.py)
        self.policy = None
        self.split_indices: dict[str, np.ndarray] = {}  # into the dataset's own training pool
        self.oob_indices: Optional[np.ndarray] = None  # out-of-bag training-pool indices, with bootstrap
        self._arrays: Optional[dict[str, tuple[np.ndarray, np.ndarray]]] = None
        self._info: Optional[ArrayDataset] = None
        self._tensors: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    # ---------------------------------------------------------------- splits and what the model needs to know
    def _split(self, ds: ArrayDataset) -> tuple[np.ndarray, np.ndarray, Optional[np.ndarray]]:
        labels = ds.y if ds.task == "classification" else None
        if ds.x_test is not None and self.test_fraction:
            raise ConfigError(f"data.test_fraction={self.test_fraction}: dataset {self.name!r} comes with its own test split; set it to 0")
        k = self.kfold.get("k")
        test_fraction = 0.0 if ds.x_test is not None else self.test_fraction
        train, val, test = holdout_split(len(ds.x), 0.0 if k else self.val_fraction, test_fraction, self.split_seed, labels)
        if k:
            train, val = kfold_split(train, k, self.kfold.get("index", 0), self.split_seed, labels)
        if self.bootstrap is not None:
            train, self.oob_indices = bootstrap_sample(train, self.bootstrap)
        self.split_indices = {"train": train, "val": val, "test": test}
        return train, val, None if ds.x_test is not None else test

    def _load(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        if self._arrays is None:
            ds = load(self.name, **self.dataset_kwargs)
            train, val, test = self._split(ds)
            shift, scale = fit_normalizer(ds.x[train], self.normalize, reduce_axes(ds.kind, self.normalize_per, ds.x.ndim))
            test_xy = (ds.x_test, ds.y_test) if test is None else (ds.x[test], ds.y[test])
            raw = {"train": (ds.x[train], ds.y[train]), "val": (ds.x[val], ds.y[val]), "test": test_xy}
            self._arrays = {k: (apply_normalizer(x, shift, scale), y) for k, (x, y) in raw.items()}
            self._normalizer = (shift, scale)
            self._info = ds
            if self.augment:
                self.policy = policy_for(ds.kind, ds.input_shape, flip=self.name in FLIP_SAFE)
        return self._arrays

    def arrays(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        """A split's inputs and targets (``train``, ``val`` or ``test``) as numpy arrays, normalized as
        training sees them and clean: no augmentation, no mixing. Loads the data on first use."""
        if split not in SPLITS:
            raise ValueError(f"split {split!r}: unknown; valid: {', '.join(SPLITS)}")
        return self._load()[split]

    def tensors(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        """``arrays(split)`` as tensors: on the training device once Lightning has set the
        DataModule up there, on the CPU before. Clean, like ``arrays``."""
        if split in self._tensors:
            return self._tensors[split]
        x, y = self.arrays(split)
        return torch.from_numpy(x), torch.from_numpy(y)

    def normalize_like_training(self, x: np.ndarray) -> np.ndarray:
        """Raw inputs (e.g. a generative model's samples) normalized with the training split's statistics."""
        self._load()
        return apply_normalizer(x, *self._normalizer)

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
    @property
    def on_device(self) -> bool:
        """Whether the splits live on the training device (else: a DataLoader from host memory)."""
        if self.loader != "auto":
            return self.loader == "device"
        return self.num_workers == 0 and self._load()["train"][0].nbytes <= self.device_limit_mb * 2**20

    def setup(self, stage: Optional[str] = None) -> None:
        on_gpu = self.trainer is not None and self.trainer.strategy.root_device.type != "cpu"
        device = self.trainer.strategy.root_device if self.trainer is not None and self.on_device else torch.device("cpu")
        self._pin = on_gpu and not self.on_device
        self._tensors = {k: (torch.from_numpy(x).to(device), torch.from_numpy(y).to(device)) for k, (x, y) in self._load().items()}
        num_classes = self.info.num_classes
        self.transform = TrainTransform(self.policy, self.mix, num_classes, self.seed)
        self.member_transforms = [TrainTransform(self.policy, self.mix, num_classes, s) for s in self.seeds or []]

    def _loader(self, split: str, train: bool):
        x, y = self._tensors[split]
        batch_size = self.batch_size if train else self.eval_batch_size
        # +trainer.overfit_batches: the same batches every epoch, as Lightning makes a DataLoader's
        shuffle = train and not (self.trainer is not None and self.trainer.overfit_batches)
        if not self.on_device:
            return DataLoader(
                TensorDataset(x, y),
                batch_size=batch_size,
                shuffle=shuffle,
                num_workers=self.num_workers,
                pin_memory=self._pin,
                persistent_workers=self.num_workers > 0,
            )
        rank, world = (self.trainer.global_rank, self.trainer.world_size) if self.trainer is not None else (0, 1)
        return DeviceBatchLoader(
            (x, y),
            batch_size,
            shuffle=shuffle,
            seed=self.seed,
            rank=rank,
            world_size=world,
            transform=self.transform if train and self.transform.active else None,
        )

    def check_members(self) -> None:
        """``seeds``: the members' batches are gathered from the training split on the device."""
        if not self.on_device:
            mb = self._load()["train"][0].nbytes / 2**20
            raise ConfigError(
                f"seeds={self.seeds}: the members' batches are drawn from the training split on the device, and data.loader="
                f"{self.loader} keeps this one ({mb:.0f} MB) in host memory; set data.loader=device (or raise data.device_limit_mb)"
            )

    def train_dataloader(self):
        if self.seeds is not None:
            self.check_members()
            from datamodules.member_loader import MemberBatchLoader

            shuffle = not (self.trainer is not None and self.trainer.overfit_batches)
            active = self.transform.active
            transforms = self.member_transforms if active else None
            return MemberBatchLoader(self._tensors["train"], self.batch_size, self.seeds, shuffle, transforms)
        return self._loader("train", train=True)

    def val_dataloader(self):
        return self._loader("val", train=False) if len(self._tensors["val"][1]) else []

    def test_dataloader(self):
        return self._loader("test", train=False)

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        """DataLoader path, training batches only: augment and mix this batch on the device (the
        device path has done it for the whole epoch already)."""
        if self.on_device or self.trainer is None or not self.trainer.training or not self.transform.active:
            return batch
        if isinstance(batch, torch.Tensor):  # the model summary's example input, not an (x, y) batch
            return batch
        x, y = batch
        return self.transform(x, y, self.trainer.global_step, len(y), self.trainer.global_rank)
