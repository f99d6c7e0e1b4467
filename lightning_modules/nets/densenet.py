"""DenseNet-BC (Huang et al. 2017), for (C, L) signals or (C, H, W) images; ``batch_norm=None`` is on."""

from __future__ import annotations

import math
from typing import Optional, Sequence

import torch
from torch import nn

from core.errors import ConfigError
from lightning_modules.nets import MODELS
from lightning_modules.nets.common import (
    SPATIAL,
    FeaturesAndHead,
    GlobalPoolHead,
    avg_pool,
    check_dropout,
    conv,
    halved,
    norm,
    spatial_dims,
)


class DenseLayer(nn.Module):
    """x → cat[x, conv3(relu(norm(conv1(relu(norm(x))))))]: ``growth`` new maps, bottleneck 4·growth."""

    def __init__(self, dims: int, c_in: int, growth: int, bn: bool, dropout: float):
        super().__init__()
        self.new = nn.Sequential(
            norm(dims, c_in, bn),
            nn.ReLU(),
            conv(dims, c_in, 4 * growth, 1, bias=not bn),
            norm(dims, 4 * growth, bn),
            nn.ReLU(),
            conv(dims, 4 * growth, growth, 3, bias=not bn),
            *([nn.Dropout(dropout)] if dropout > 0 else []),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, self.new(x)], dim=1)


@MODELS.register("densenet", inputs=SPATIAL, param_count=(50_000, 70_000))
def densenet(
    input_shape: Sequence[int],
    num_outputs: int,
    growth_rate: int = 12,
    block_layers: Sequence[int] = (4, 4, 4),
    compression: float = 0.5,
    dropout: float = 0.0,
    batch_norm: Optional[bool] = None,
) -> nn.Module:
    """DenseNet-BC (Huang et al. 2017): in a dense block every layer sees the concatenation of all
    earlier maps and adds ``growth_rate`` new ones; transitions (norm → relu → 1×1 conv keeping
    ``compression`` of the channels → 2× average pooling) join the blocks."""
    dims = spatial_dims("densenet", input_shape)
    check_dropout(dropout)
    if not 0 < compression <= 1:
        raise ConfigError(f"model.compression={compression}: must be in (0, 1]")
    bn = True if batch_norm is None else batch_norm
    size, c = min(input_shape[1:]), 2 * growth_rate
    layers: list[nn.Module] = [conv(dims, input_shape[0], c, 3, bias=not bn)]
    for b, n in enumerate(block_layers):
        for _ in range(n):
            layers.append(DenseLayer(dims, c, growth_rate, bn, dropout))
            c += growth_rate
        if b < len(block_layers) - 1:
            out = max(1, math.floor(compression * c))
            layers += [norm(dims, c, bn), nn.ReLU(), conv(dims, c, out, 1, bias=not bn), avg_pool(dims, size)]
            size, c = halved(size), out
    layers += [norm(dims, c, bn), nn.ReLU()]
    return FeaturesAndHead(nn.Sequential(*layers), GlobalPoolHead(c, num_outputs, dropout))
