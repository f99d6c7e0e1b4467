"""The rules of the ``data.*`` keys (``core/rules.py``), defined once: ``TensorDataModule`` applies
them when it is built and ``experiments/validation.py`` before anything runs."""

from __future__ import annotations

from typing import Any, Optional

from core.errors import ConfigError
from core.rules import boolean, fraction, number, one_of
from datamodules.normalization import NORMALIZERS, STATISTICS

LOADERS = ("auto", "device", "dataloader")

#: key under ``data.`` → its rule
RULES = {
    "batch_size": number(1, integer=True),
    "eval_batch_size": number(1, integer=True),
    "val_fraction": number(0, 1, hi_open=True, optional=True),
    "test_fraction": fraction,
    "normalize": one_of(*NORMALIZERS),
    "normalize_per": one_of(*STATISTICS),
    "split_seed": number(0, integer=True),
    "kfold.k": number(2, integer=True, optional=True),
    "kfold.index": number(0, integer=True),
    "bootstrap": number(0, integer=True, optional=True),
    "loader": one_of(*LOADERS),
    "num_workers": number(0, integer=True),
    "device_limit_mb": number(0),
}

#: the ``regularization.*`` keys the data module applies: augmentation and mixing
REGULARIZATION = {
    "augment": boolean,
    "mixup_alpha": number(0),
    "cutmix_alpha": number(0),
    "mix_prob": number(0, 1),
    "switch_prob": number(0, 1),
}


DEFAULT_VAL_FRACTION = 0.1


def val_fraction_of(val_fraction: Optional[float], k: Optional[int]) -> float:
    """``data.val_fraction`` as used: null is 0.1, or 0 with K-fold (the fold is the validation set);
    a value the user gave is kept, so one > 0 with K-fold is still refused by ``check_splits``."""
    if val_fraction is not None:
        return val_fraction
    return 0.0 if k is not None else DEFAULT_VAL_FRACTION


def check_splits(val_fraction: Any, test_fraction: Any, k: Optional[int], index: int) -> None:
    """The rules that tie several ``data.*`` keys together (each key already passed its own rule)."""
    if k is not None and index >= k:
        raise ConfigError(f"data.kfold.index={index}: must be < data.kfold.k={k}")
    if k is not None and val_fraction:
        raise ConfigError(
            f"data.val_fraction={val_fraction}: with data.kfold.k={k} the fold is the validation set; set data.val_fraction=0"
        )
    if val_fraction + test_fraction >= 1:
        raise ConfigError(
            f"data.val_fraction + data.test_fraction = {val_fraction} + {test_fraction}: must be < 1 to leave a training split"
        )


def check_loader(loader: str, num_workers: int) -> None:
    if loader == "device" and num_workers:
        raise ConfigError(
            f"data.num_workers={num_workers}: workers serve data.loader=dataloader; the device loader has none (set "
            f"data.loader=dataloader or auto)"
        )
