"""Vision Transformer (Dosovitskiy et al. 2021) over patches of an image or of a 1-D signal, with the
encoder and readout of ``transformer``."""

from __future__ import annotations

import math
from typing import Optional, Sequence

import torch
from torch import nn

from core.errors import ConfigError
from lightning_modules.nets import MODELS
from lightning_modules.nets.common import check_dropout
from lightning_modules.nets.transformer import Readout, encoder


@MODELS.register("vit", inputs=("image", "signal"))
class ViT(nn.Module):
    """Vision Transformer (Dosovitskiy et al. 2021): non-overlapping patches → Linear embedding (a
    convolution with kernel = stride = patch) + learned positions, a class token in front → encoder
    → the class token's output → readout. ``patch=null``: a 4 × 4 grid of patches for images, 10
    patches for signals. Inputs not a multiple of the patch are zero-padded at the end."""

    def __init__(
        self,
        input_shape: Sequence[int],
        num_outputs: int,
        patch: Optional[int] = None,
        d_model: int = 64,
        heads: int = 4,
        layers: int = 2,
        ff: int = 128,
        dropout: float = 0.0,
        batch_norm: Optional[bool] = None,
    ):
        super().__init__()
        check_dropout(dropout)
        spatial = tuple(input_shape[1:])
        if patch is None:
            patch = max(1, min(spatial) // (4 if len(spatial) == 2 else 10))
        if not 1 <= patch <= min(spatial):
            raise ConfigError(f"model.patch={patch}: must be in [1, {min(spatial)}] for input shape {tuple(input_shape)}")
        self.patch = patch
        self.padded = tuple(math.ceil(s / patch) * patch for s in spatial)
        conv = nn.Conv1d if len(spatial) == 1 else nn.Conv2d
        self.embed = conv(input_shape[0], d_model, patch, stride=patch)
        tokens = math.prod(s // patch for s in self.padded)
        self.cls = nn.Parameter(torch.zeros(1, 1, d_model))
        self.positions = nn.Parameter(0.02 * torch.randn(1, tokens + 1, d_model))
        self.encoder = encoder(d_model, heads, layers, ff, dropout)
        self.readout = Readout(d_model, num_outputs, bool(batch_norm))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pad = [p for s, t in zip(reversed(x.shape[2:]), reversed(self.padded)) for p in (0, t - s)]
        if any(pad):
            x = nn.functional.pad(x, pad)
        patches = self.embed(x).flatten(2).transpose(1, 2)  # (B, tokens, d)
        tokens = torch.cat([self.cls.expand(x.shape[0], -1, -1), patches], 1) + self.positions  # (B, 1 + tokens, d)
        return self.readout(self.encoder(tokens)[:, 0])
