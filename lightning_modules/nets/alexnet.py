"""A small AlexNet (Krizhevsky et al. 2012), for (C, L) signals or (C, H, W) images; ``batch_norm=None`` is off."""

from __future__ import annotations

from typing import Optional, Sequence

from torch import nn

from lightning_modules.nets import MODELS
from lightning_modules.nets.common import (
    SPATIAL,
    FeaturesAndHead,
    check_dropout,
    conv,
    dense_head,
    flat_size,
    halved,
    max_pool,
    norm,
    spatial_dims,
)


@MODELS.register("alexnet", inputs=SPATIAL, param_count=(150_000, 300_000))
def alexnet(
    input_shape: Sequence[int],
    num_outputs: int,
    width: int = 32,
    hidden: int = 256,
    dropout: float = 0.0,
    batch_norm: Optional[bool] = None,
) -> nn.Module:
    """A small AlexNet (Krizhevsky et al. 2012): ReLU everywhere, five convolutions (a wide first
    kernel, then 3-wide) with max pooling after the 1st, 2nd and 5th, and a two-layer dense head with
    dropout before each layer (the paper used 0.5: ``regularization.dropout=0.5``). Widths
    ``width``·(1, 2, 3, 3, 2) instead of (96, 256, 384, 384, 256)."""
    dims = spatial_dims("alexnet", input_shape)
    check_dropout(dropout)
    bn, size = bool(batch_norm), min(input_shape[1:])
    plan = [(width, 5, True), (2 * width, 3, True), (3 * width, 3, False), (3 * width, 3, False), (2 * width, 3, True)]
    layers: list[nn.Module] = []
    c = input_shape[0]
    for w, k, pool in plan:
        layers += [conv(dims, c, w, k), norm(dims, w, bn), nn.ReLU()]
        if pool:
            layers.append(max_pool(dims, size))
            size = halved(size)
        c = w
    features = nn.Sequential(*layers)
    return FeaturesAndHead(features, dense_head(flat_size(features, input_shape), (hidden, hidden), num_outputs, "relu", dropout))
