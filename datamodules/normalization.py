"""Input normalization with statistics from the training split only.

Statistics are per feature (over the sample axis), as scikit-learn's scalers do; a constant
feature (zero spread, e.g. the always-blank corner pixels of digits) is left unscaled.
"""
from __future__ import annotations

import numpy as np

NORMALIZERS = ("zscore", "minmax", "none")


def fit_normalizer(x_train: np.ndarray, method: str) -> tuple[np.ndarray, np.ndarray]:
    """(shift, scale) such that ``(x - shift) / scale`` is normalized; shapes are ``x.shape[1:]``."""
    if method not in NORMALIZERS:
        raise ValueError(f"data.normalize={method!r}: unknown; valid: {', '.join(NORMALIZERS)}")
    shape = x_train.shape[1:]
    if method == "none" or len(x_train) == 0:
        return np.zeros(shape, np.float32), np.ones(shape, np.float32)
    if method == "zscore":
        shift, scale = x_train.mean(axis=0), x_train.std(axis=0)
    else:  # minmax → [0, 1]
        shift, scale = x_train.min(axis=0), x_train.max(axis=0) - x_train.min(axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    return shift.astype(np.float32), scale.astype(np.float32)


def apply_normalizer(x: np.ndarray, shift: np.ndarray, scale: np.ndarray) -> np.ndarray:
    return ((x - shift) / scale).astype(np.float32)
