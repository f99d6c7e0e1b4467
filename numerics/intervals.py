"""The 95% t-interval of a mean over seeds, as every report and a seeds run's metrics.json give it."""

from __future__ import annotations

import math
from typing import Iterable

import numpy as np


def interval(values: Iterable[float]) -> tuple[float, float, float]:
    """Mean, sample std and the half-width of the 95% t-interval of the mean (0 for one value)."""
    from scipy import stats

    v = np.asarray(list(values), dtype=float)
    if len(v) < 2:
        return float(v.mean()), 0.0, 0.0
    std = float(v.std(ddof=1))
    return float(v.mean()), std, float(stats.t.ppf(0.975, len(v) - 1) * std / math.sqrt(len(v)))
