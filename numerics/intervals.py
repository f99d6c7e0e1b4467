"""The 95% t-interval of a mean over seeds, as every report and a seeds run's metrics.json give it,
and of a paired difference: two configurations run with the same seeds share the seed's split, data
order (and, for one architecture, initialization), so their per-seed differences vary less than
either alone and the interval of the mean difference sees effects that two overlapping unpaired
intervals hide."""

from __future__ import annotations

import math
from typing import Iterable, Mapping

import numpy as np


def interval(values: Iterable[float]) -> tuple[float, float, float]:
    """Mean, sample std and the half-width of the 95% t-interval of the mean (0 for one value)."""
    from scipy import stats

    v = np.asarray(list(values), dtype=float)
    if len(v) < 2:
        return float(v.mean()), 0.0, 0.0
    std = float(v.std(ddof=1))
    return float(v.mean()), std, float(stats.t.ppf(0.975, len(v) - 1) * std / math.sqrt(len(v)))


def paired(a: Mapping[int, float], b: Mapping[int, float]) -> tuple[float, float, int]:
    """``a − b`` paired by seed (the keys): the mean of the per-seed differences over the seeds both
    have, the half-width of its 95% t-interval, and how many seeds it rests on."""
    seeds = sorted(set(a) & set(b))
    if not seeds:
        raise ValueError("paired: no seed in common")
    mean, _, half = interval(a[s] - b[s] for s in seeds)
    return mean, half, len(seeds)


def direction(mean: float, half: float, n: int) -> int:
    """+1 when the 95% interval of a difference over ``n`` seeds lies above zero, −1 below, 0 when it
    holds zero or rests on fewer than two seeds (no interval)."""
    if n < 2 or not math.isfinite(half):
        return 0
    return 1 if mean - half > 0 else -1 if mean + half < 0 else 0
