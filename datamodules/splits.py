"""Index splits: seeded train/val/test holdout, stratified for classification."""
from __future__ import annotations

from typing import Optional

import numpy as np


def holdout_split(
    n: int, val_fraction: float, test_fraction: float, seed: int, labels: Optional[np.ndarray] = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Split ``range(n)`` into (train, val, test) index arrays; fractions are of the whole set.

    With ``labels`` the split is stratified (each part keeps the class proportions).
    """
    from sklearn.model_selection import train_test_split

    if not (0 <= val_fraction < 1 and 0 <= test_fraction < 1 and val_fraction + test_fraction < 1):
        raise ValueError(f"val_fraction={val_fraction}, test_fraction={test_fraction}: each in [0, 1) and their sum < 1")
    idx = np.arange(n)
    test = np.array([], dtype=np.int64)
    if test_fraction > 0:
        idx, test = train_test_split(idx, test_size=test_fraction, random_state=seed, stratify=None if labels is None else labels[idx])
    val = np.array([], dtype=np.int64)
    if val_fraction > 0:
        idx, val = train_test_split(
            idx, test_size=val_fraction / (1 - test_fraction), random_state=seed, stratify=None if labels is None else labels[idx]
        )
    return np.sort(idx), np.sort(val), np.sort(test)
