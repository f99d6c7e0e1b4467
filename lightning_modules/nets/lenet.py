"""LeNet-5 (LeCun et al. 1998), for (C, L) signals or (C, H, W) images; ``batch_norm=None`` is off."""

from __future__ import annotations

from typing import Optional, Sequence

from torch import nn

from lightning_modules.nets import MODELS
from lightning_modules.nets.common import (
    SPATIAL,
    FeaturesAndHead,
    avg_pool,
    check_dropout,
    conv,
    dense_head,
    flat_size,
    halved,
    norm,
    spatial_dims,
)
from lightning_modules.nets.common import (
    activation as make_activation,
)


@MODELS.register("lenet", inputs=SPATIAL, param_count=(20_000, 30_000))
def lenet(
    input_shape: Sequence[int], num_outputs: int, activation: str = "tanh", dropout: float = 0.0, batch_norm: Optional[bool] = None
) -> nn.Module:
    """LeNet-5 (LeCun et al. 1998): 5-wide convolutions (6 then 16 maps) each followed by average
    pooling ("subsampling"), then dense layers 120 → 84 → outputs, with saturating activations."""
    dims = spatial_dims("lenet", input_shape)
    check_dropout(dropout)
    bn, size = bool(batch_norm), min(input_shape[1:])
    layers: list[nn.Module] = [conv(dims, input_shape[0], 6, 5), norm(dims, 6, bn), make_activation(activation), avg_pool(dims, size)]
    size = halved(size)
    layers += [
        conv(dims, 6, 16, 5, padding=0 if size >= 5 else 2),
        norm(dims, 16, bn),
        make_activation(activation),
    ]  # valid padding where it fits
    size = size - 4 if size >= 5 else size
    layers.append(avg_pool(dims, size))
    features = nn.Sequential(*layers)
    return FeaturesAndHead(features, dense_head(flat_size(features, input_shape), (120, 84), num_outputs, activation, dropout))
