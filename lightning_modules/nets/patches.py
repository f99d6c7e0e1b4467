"""Patch embedding for any model that reads an image or a 1-D signal as a sequence of patches (``vit``).

``patch_embedding(input_shape, d_model, patch)``: non-overlapping patches → a Linear embedding each,
computed as a convolution with kernel = stride = patch (a ``Conv2d`` for images, a ``Conv1d`` for
signals, so its parameters are ``weight`` and ``bias`` as a plain convolution's are). Inputs that
are not a multiple of the patch are zero-padded at the end. ``(B, C, *spatial) → (B, tokens, d_model)``.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

import torch
from torch import nn

from core.errors import ConfigError


def patch_size(patch: Optional[int], input_shape: Sequence[int]) -> int:
    """``patch``, checked against the input, or by default (``None``) a 4 × 4 grid of patches for
    images and 10 patches for signals."""
    spatial = tuple(input_shape[1:])
    if patch is None:
        patch = max(1, min(spatial) // (4 if len(spatial) == 2 else 10))
    if not 1 <= patch <= min(spatial):
        raise ConfigError(f"model.patch={patch}: must be in [1, {min(spatial)}] for input shape {tuple(input_shape)}")
    return patch


class _Patches:
    """The patch logic over a convolution (mixed in before ``nn.Conv1d`` / ``nn.Conv2d``)."""

    def __init__(self, input_shape: Sequence[int], d_model: int, patch: int):
        super().__init__(input_shape[0], d_model, patch, stride=patch)
        self.patch = patch
        self.padded = tuple(math.ceil(s / patch) * patch for s in input_shape[1:])  # the spatial size after padding
        self.tokens = math.prod(s // patch for s in self.padded)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pad = [p for s, t in zip(reversed(x.shape[2:]), reversed(self.padded)) for p in (0, t - s)]
        if any(pad):
            x = nn.functional.pad(x, pad)
        return super().forward(x).flatten(2).transpose(1, 2)  # (B, d, *grid) → (B, tokens, d)


class PatchEmbedding1d(_Patches, nn.Conv1d):
    """Patches of a signal (C, L)."""


class PatchEmbedding2d(_Patches, nn.Conv2d):
    """Patches of an image (C, H, W)."""


def patch_embedding(input_shape: Sequence[int], d_model: int, patch: Optional[int] = None) -> PatchEmbedding1d | PatchEmbedding2d:
    """The embedding of one sample of ``input_shape`` (C, L) or (C, H, W) as patches of side ``patch``
    (``None``: the default of ``patch_size``); ``.tokens`` is the number of patches it returns."""
    patch = patch_size(patch, input_shape)
    return (PatchEmbedding1d if len(input_shape) == 2 else PatchEmbedding2d)(input_shape, d_model, patch)
