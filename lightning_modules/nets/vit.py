"""Vision Transformer (Dosovitskiy et al. 2021) over patches of an image or of a 1-D signal, with the
encoder and readout of ``transformer``."""

from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import nn

from lightning_modules.nets import MODELS
from lightning_modules.nets.common import check_dropout
from lightning_modules.nets.patches import patch_embedding
from lightning_modules.nets.transformer import Readout, encoder


@MODELS.register("vit", inputs=("image", "signal"), param_count=(60_000, 75_000))
class ViT(nn.Module):
    """Vision Transformer (Dosovitskiy et al. 2021): non-overlapping patches → Linear embedding (a
    convolution with kernel = stride = patch: ``nets/patches.py``) + learned positions, a class token
    in front → encoder → the class token's output → readout. ``patch=null``: a 4 × 4 grid of patches
    for images, 10 patches for signals. Inputs not a multiple of the patch are zero-padded at the end."""

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
        self.embed = patch_embedding(input_shape, d_model, patch)  # (B, C, *spatial) → (B, tokens, d)
        self.cls = nn.Parameter(torch.zeros(1, 1, d_model))
        self.positions = nn.Parameter(0.02 * torch.randn(1, self.embed.tokens + 1, d_model))
        self.encoder = encoder(d_model, heads, layers, ff, dropout)
        self.readout = Readout(d_model, num_outputs, bool(batch_norm))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        patches = self.embed(x)  # (B, tokens, d)
        tokens = torch.cat([self.cls.expand(x.shape[0], -1, -1), patches], 1) + self.positions  # (B, 1 + tokens, d)
        return self.readout(self.encoder(tokens)[:, 0])
