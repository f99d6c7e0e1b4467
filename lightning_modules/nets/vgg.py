"""VGG (Simonyan & Zisserman 2015), small, for (C, L) signals or (C, H, W) images; ``batch_norm=None`` is off."""

from __future__ import annotations

from typing import Optional, Sequence

from torch import nn

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


@MODELS.register("vgg", inputs=SPATIAL, param_count=(80_000, 120_000))
def vgg(
    input_shape: Sequence[int],
    num_outputs: int,
    widths: Sequence[int] = (32, 64, 128),
    convs_per_stage: int = 2,
    dropout: float = 0.0,
    batch_norm: Optional[bool] = None,
) -> nn.Module:
    """VGG (Simonyan & Zisserman 2015): stages of stacked 3-wide convolutions (two 3×3 see as far as
    one 5×5 with fewer weights), max pooling between stages, width doubling; a global-average head
    instead of the 4096-wide dense layers."""
    dims = spatial_dims("vgg", input_shape)
    check_dropout(dropout)
    bn, size, c = bool(batch_norm), min(input_shape[1:]), input_shape[0]
    layers: list[nn.Module] = []
    for w in widths:
        for _ in range(convs_per_stage):
            layers += [conv(dims, c, w, 3), norm(dims, w, bn), nn.ReLU()]
            c = w
        layers.append(max_pool(dims, size))
        size = halved(size)
    return FeaturesAndHead(nn.Sequential(*layers), GlobalPoolHead(c, num_outputs, dropout))
