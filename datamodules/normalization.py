"""Input normalization with statistics from the training split only.

Statistics are per feature (over the sample axis, as scikit-learn's scalers do) or per channel
(over the samples and the spatial axes, as image pipelines do: a convolution then sees the same
scaling at every position). ``per="auto"``: per channel for images (C, H, W) and signals (C, L),
per feature for tabular data and sequences (L, F: per input feature over samples and steps).
A constant feature or channel (zero spread, e.g. the always-blank corner pixels of digits) is
left unscaled.
"""

from __future__ import annotations

import numpy as np

from core.errors import ConfigError

NORMALIZERS = ("zscore", "minmax", "none")
STATISTICS = ("auto", "feature", "channel")


def reduce_axes(kind: str, per: str, ndim: int) -> tuple[int, ...]:
    """The axes of an (N, *shape) array the statistics are taken over."""
    if per not in STATISTICS:
        raise ConfigError(f"data.normalize_per={per!r}: unknown; valid: {', '.join(STATISTICS)}")
    if per == "auto":
        per = "channel" if kind in ("image", "signal") else "feature"
    if per == "feature":
        return (0, 1) if kind == "sequence" else (0,)
    if kind not in ("image", "signal"):
        raise ConfigError(f"data.normalize_per=channel: {kind} data has no channels; use feature or auto")
    return (0, *range(2, ndim))


def fit_normalizer(x_train: np.ndarray, method: str, axes: tuple[int, ...] = (0,)) -> tuple[np.ndarray, np.ndarray]:
    """(shift, scale) such that ``(x - shift) / scale`` is normalized, statistics over ``axes``;
    shapes broadcast against ``x.shape[1:]``."""
    if method not in NORMALIZERS:
        raise ConfigError(f"data.normalize={method!r}: unknown; valid: {', '.join(NORMALIZERS)}")
    shape = x_train.shape[1:]
    if method == "none" or len(x_train) == 0:
        return np.zeros(shape, np.float32), np.ones(shape, np.float32)
    if method == "zscore":
        shift, scale = x_train.mean(axis=axes, keepdims=True)[0], x_train.std(axis=axes, keepdims=True)[0]
    else:  # minmax → [0, 1]
        lo, hi = x_train.min(axis=axes, keepdims=True)[0], x_train.max(axis=axes, keepdims=True)[0]
        shift, scale = lo, hi - lo
    scale = np.where(scale > 0, scale, 1.0)
    return shift.astype(np.float32), scale.astype(np.float32)


def apply_normalizer(x: np.ndarray, shift: np.ndarray, scale: np.ndarray) -> np.ndarray:
    return ((x - shift) / scale).astype(np.float32)
