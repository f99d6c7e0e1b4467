"""Data as discrete levels, so that likelihoods are exact probabilities (bits per dimension).

Digits take the 17 integer values 0…16, and so are modelled exactly; a continuous signal (MNIST-1D)
is cut into ``levels`` equal bins between the training split's minimum and maximum. Every
generative family sees the data in the unit range (level / (levels − 1)) and its samples are
mapped back to the data's own range (``to_data``), where a classifier trained on the real data can
judge them.
"""

from __future__ import annotations

import torch

from core.errors import ConfigError

MAX_EXACT = 256  # data with at most this many distinct values is modelled at exactly those values
DEFAULT_BINS = 32


class Levels:
    def __init__(self, low: float, high: float, count: int):
        if not high > low:
            raise ConfigError(f"the training data is constant ({low}); a generative model has nothing to learn")
        if count < 2:
            raise ConfigError(f"model.levels={count}: must be an integer >= 2 or null")
        self.low, self.high, self.count = float(low), float(high), int(count)

    @classmethod
    def fit(cls, x: torch.Tensor, levels: int | None = None) -> "Levels":
        """From the training split: evenly spaced integer-like values (digits: 0…16) give one level
        each; anything else ``levels`` (default 32) bins."""
        low, high = float(x.min()), float(x.max())
        if levels is None:
            values = torch.unique(x.flatten()[:10_000_000])  # the first 10M values find every level of 8-bit images
            step = (high - low) / max(len(values) - 1, 1)
            evenly = len(values) <= MAX_EXACT and torch.allclose((values - low) / step, torch.round((values - low) / step), atol=1e-4)
            levels = int(round((high - low) / step)) + 1 if evenly else DEFAULT_BINS
        return cls(low, high, levels)

    def index(self, x: torch.Tensor) -> torch.Tensor:
        """Data → level index in [0, count) (long)."""
        return torch.round((x - self.low) / (self.high - self.low) * (self.count - 1)).clamp(0, self.count - 1).long()

    def unit(self, x: torch.Tensor) -> torch.Tensor:
        """Data → its level in the unit range, [0, 1]."""
        return self.index(x).float() / (self.count - 1)

    def to_data(self, u: torch.Tensor) -> torch.Tensor:
        """Unit range → the data's range, snapped to the nearest level."""
        idx = torch.round(u.clamp(0, 1) * (self.count - 1))
        return self.low + idx / (self.count - 1) * (self.high - self.low)

    def state(self) -> dict:
        return {"low": self.low, "high": self.high, "count": self.count}
