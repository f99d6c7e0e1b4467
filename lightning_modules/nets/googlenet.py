"""GoogLeNet's Inception blocks (Szegedy et al. 2015), small, for (C, L) signals or (C, H, W) images;
``batch_norm=None`` is off (the first Inception network had none)."""

from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import nn

from core.errors import ConfigError
from lightning_modules.nets import MODELS
from lightning_modules.nets.common import (
    SPATIAL,
    FeaturesAndHead,
    GlobalPoolHead,
    check_dropout,
    conv,
    halved,
    max_pool,
    norm,
    spatial_dims,
)


class Inception(nn.Module):
    """Four parallel branches concatenated on channels: 1×1; 1×1 → 3×3; 1×1 → 5×5; 3×3 max pool → 1×1.
    The 1×1 reductions keep the wide kernels cheap (Szegedy et al. 2015)."""

    def __init__(self, dims: int, c_in: int, b1: int, b3: tuple[int, int], b5: tuple[int, int], bp: int, bn: bool):
        super().__init__()

        def unit(ci: int, co: int, k: int) -> list[nn.Module]:
            return [conv(dims, ci, co, k), norm(dims, co, bn), nn.ReLU()]

        pool = nn.MaxPool1d(3, 1, 1) if dims == 1 else nn.MaxPool2d(3, 1, 1)
        self.branches = nn.ModuleList(
            [
                nn.Sequential(*unit(c_in, b1, 1)),
                nn.Sequential(*unit(c_in, b3[0], 1), *unit(b3[0], b3[1], 3)),
                nn.Sequential(*unit(c_in, b5[0], 1), *unit(b5[0], b5[1], 5)),
                nn.Sequential(pool, *unit(c_in, bp, 1)),
            ]
        )
        self.out_channels = b1 + b3[1] + b5[1] + bp

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([branch(x) for branch in self.branches], dim=1)


@MODELS.register("googlenet", inputs=SPATIAL, param_count=(15_000, 30_000))
def googlenet(
    input_shape: Sequence[int], num_outputs: int, width: int = 16, blocks: int = 3, dropout: float = 0.0, batch_norm: Optional[bool] = None
) -> nn.Module:
    """A small GoogLeNet: a 3×3 stem, ``blocks`` Inception blocks with max pooling after every
    second one, and global average pooling + dropout + Linear as in the paper."""
    dims = spatial_dims("googlenet", input_shape)
    check_dropout(dropout)
    if blocks < 1:
        raise ConfigError(f"model.blocks={blocks}: must be >= 1")
    bn, size = bool(batch_norm), min(input_shape[1:])
    c = 2 * width
    layers: list[nn.Module] = [conv(dims, input_shape[0], c, 3), norm(dims, c, bn), nn.ReLU()]
    for i in range(blocks):
        w = width * (1 + i // 2)  # widen after each pooling
        block = Inception(dims, c, w, (w, 2 * w), (w // 4 or 1, w // 2 or 1), w // 2 or 1, bn)
        layers.append(block)
        c = block.out_channels
        if i % 2 == 1 and i < blocks - 1:
            layers.append(max_pool(dims, size))
            size = halved(size)
    return FeaturesAndHead(nn.Sequential(*layers), GlobalPoolHead(c, num_outputs, dropout))
