"""Index splits: seeded train/val/test holdout, stratified for classification."""

from __future__ import annotations

import math
from typing import Optional

import numpy as np

from core.errors import ConfigError


def holdout_split(
    n: int, val_fraction: float, test_fraction: float, seed: int, labels: Optional[np.ndarray] = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Split ``range(n)`` into (train, val, test) index arrays; fractions are of the whole set.

    With ``labels`` the split is stratified (each part keeps the class proportions).
    """
    from sklearn.model_selection import train_test_split

    if not (0 <= val_fraction < 1 and 0 <= test_fraction < 1 and val_fraction + test_fraction < 1):
        raise ConfigError(f"val_fraction={val_fraction}, test_fraction={test_fraction}: each in [0, 1) and their sum < 1")
    idx = np.arange(n)
    if labels is not None:  # a stratified part needs at least one sample of every class
        classes = len(np.unique(labels))
        for key, frac in (("test_fraction", test_fraction), ("val_fraction", val_fraction)):  # both are fractions of n
            if 0 < frac and math.ceil(frac * n) < classes:
                raise ConfigError(
                    f"data.{key}={frac}: {math.ceil(frac * n)} of {n} samples cannot hold all {classes} classes in a stratified "
                    f"split; raise it to >= {classes / n:.3g}"
                )
    test = np.array([], dtype=np.int64)
    if test_fraction > 0:
        idx, test = train_test_split(idx, test_size=test_fraction, random_state=seed, stratify=None if labels is None else labels[idx])
    val = np.array([], dtype=np.int64)
    if val_fraction > 0:
        idx, val = train_test_split(
            idx, test_size=val_fraction / (1 - test_fraction), random_state=seed, stratify=None if labels is None else labels[idx]
        )
    return np.sort(idx), np.sort(val), np.sort(test)


def kfold_split(pool: np.ndarray, k: int, index: int, seed: int, labels: Optional[np.ndarray] = None) -> tuple[np.ndarray, np.ndarray]:
    """(train, val): fold ``index`` of a K-fold split of ``pool`` (stratified with ``labels``)."""
    from sklearn.model_selection import KFold, StratifiedKFold

    if not (isinstance(k, int) and k >= 2 and 0 <= index < k):
        raise ConfigError(f"data.kfold.k={k}, data.kfold.index={index}: need k >= 2 and 0 <= index < k")
    splitter = StratifiedKFold(k, shuffle=True, random_state=seed) if labels is not None else KFold(k, shuffle=True, random_state=seed)
    folds = list(splitter.split(pool, None if labels is None else labels[pool]))
    train, val = folds[index]
    return np.sort(pool[train]), np.sort(pool[val])


def bootstrap_sample(train: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(resampled, out_of_bag): ``len(train)`` draws with replacement, and the indices never drawn."""
    drawn = train[np.random.default_rng(seed).integers(0, len(train), len(train))]
    return drawn, np.setdiff1d(train, drawn)
