"""A plain stack of convolutions → flatten → Linear: the MNIST-1D reference CNN by default.

Like every convolutional family it takes (C, L) signals (Conv1d) or (C, H, W) images (Conv2d), chosen
from the shape; ``batch_norm=None`` is off."""

from __future__ import annotations

from typing import Optional, Sequence

from torch import nn

from core.errors import ConfigError
from lightning_modules.nets import MODELS
from lightning_modules.nets.common import (
    SPATIAL,
    FeaturesAndHead,
    check_dropout,
    conv,
    flat_size,
    norm,
    spatial_dims,
)
from lightning_modules.nets.common import (
    activation as make_activation,
)


@MODELS.register("cnn", inputs=SPATIAL, param_count=(8_710, 8_710))
def simple_cnn(
    input_shape: Sequence[int],
    num_outputs: int,
    channels: Sequence[int] = (25, 25, 25),
    kernels: Sequence[int] = (5, 3, 3),
    strides: Sequence[int] = (2, 1, 1),
    padding: int = 1,
    activation: str = "relu",
    dropout: float = 0.0,
    batch_norm: Optional[bool] = None,
) -> nn.Module:
    """A plain stack of convolutions → flatten → Linear. The defaults are the MNIST-1D reference CNN
    (Greydanus 2020): on a (1, 40) signal, 25 × 19 = 475 features into the classifier."""
    dims = spatial_dims("cnn", input_shape)
    check_dropout(dropout)
    if not len(channels) == len(kernels) == len(strides) or not channels:
        raise ConfigError(
            f"model.channels, model.kernels, model.strides: need the same non-zero length, got {len(channels)}, {len(kernels)}, "
            f"{len(strides)}"
        )
    layers: list[nn.Module] = []
    c = input_shape[0]
    for width, k, s in zip(channels, kernels, strides):
        layers += [conv(dims, c, width, k, s, padding), norm(dims, width, bool(batch_norm)), make_activation(activation)]
        c = width
    features = nn.Sequential(*layers)
    try:
        size = flat_size(features, input_shape)
    except RuntimeError:  # a kernel larger than its (padded) input
        size = 0
    if size == 0:
        raise ConfigError(
            f"model=cnn: input shape {tuple(input_shape)} is too small for kernels {list(kernels)} with strides {list(strides)}"
        )
    head = nn.Sequential(nn.Flatten(), *([nn.Dropout(dropout)] if dropout > 0 else []), nn.Linear(size, num_outputs))
    return FeaturesAndHead(features, head)
