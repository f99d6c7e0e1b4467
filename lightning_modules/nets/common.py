"""Small pieces shared by the network families: activations, parameter counts, and the layers a
convolutional family picks by the number of spatial axes (1: signals (C, L), 2: images (C, H, W))."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from core.errors import ConfigError
from core.rules import check
from lightning_modules.rules import REGULARIZATION

ACTIVATIONS = {
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "silu": nn.SiLU,
    "elu": nn.ELU,
    "leaky_relu": lambda: nn.LeakyReLU(0.2),
}  # the slope of GAN discriminators (Radford et al. 2016)


def activation(name: str) -> nn.Module:
    if name not in ACTIVATIONS:
        raise ConfigError(f"model.activation={name!r}: unknown; valid: {', '.join(sorted(ACTIVATIONS))}")
    return ACTIVATIONS[name]()


def count_parameters(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters() if p.requires_grad)


def check_dropout(dropout: float) -> None:
    check("regularization.dropout", dropout, REGULARIZATION["dropout"])


def spatial_dims(family: str, input_shape: Sequence[int]) -> int:
    """1 for a (C, L) signal, 2 for a (C, H, W) image; anything else is an error naming the family."""
    if len(input_shape) not in (2, 3) or min(input_shape) < 1:
        raise ConfigError(f"model={family}: cannot take input shape {tuple(input_shape)}; it takes (C, L) signals or (C, H, W) images")
    return len(input_shape) - 1


def conv(dims: int, c_in: int, c_out: int, kernel: int, stride: int = 1, padding: int | None = None, bias: bool = True) -> nn.Module:
    """Conv1d/Conv2d; ``padding=None`` keeps the size at stride 1 ("same" for odd kernels)."""
    cls = nn.Conv1d if dims == 1 else nn.Conv2d
    return cls(c_in, c_out, kernel, stride=stride, padding=kernel // 2 if padding is None else padding, bias=bias)


def norm(dims: int, channels: int, on: bool) -> nn.Module:
    if not on:
        return nn.Identity()
    return nn.BatchNorm1d(channels) if dims == 1 else nn.BatchNorm2d(channels)


def max_pool(dims: int, size: int) -> nn.Module:
    """Halve the spatial size, or do nothing once it is down to 1 (small inputs such as 8 × 8 digits
    go through every stage of a deep family instead of failing)."""
    if size < 2:
        return nn.Identity()
    return nn.MaxPool1d(2, ceil_mode=True) if dims == 1 else nn.MaxPool2d(2, ceil_mode=True)


def avg_pool(dims: int, size: int) -> nn.Module:
    if size < 2:
        return nn.Identity()
    return nn.AvgPool1d(2, ceil_mode=True) if dims == 1 else nn.AvgPool2d(2, ceil_mode=True)


def halved(size: int) -> int:
    return size if size < 2 else (size + 1) // 2


class GlobalPoolHead(nn.Module):
    """(B, C, *spatial) → mean over space → (Dropout) → (B, C) → Linear → (B, num_outputs)."""

    def __init__(self, channels: int, num_outputs: int, dropout: float):
        super().__init__()
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.fc = nn.Linear(channels, num_outputs)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.fc(self.drop(h.flatten(2).mean(-1)))


SPATIAL = ("image", "signal")  # the data kinds the convolutional families take


def flat_size(features: nn.Module, input_shape: Sequence[int]) -> int:
    """Number of features after ``features`` for one sample, found by running it once (eval mode:
    batch norm cannot take a batch of one in training mode)."""
    was_training = features.training
    features.eval()
    with torch.no_grad():
        n = features(torch.zeros(1, *input_shape)).numel()
    features.train(was_training)
    return n


def dense_head(width: int, hidden: Sequence[int], num_outputs: int, act: str, dropout: float) -> nn.Sequential:
    """flatten → [Dropout → Linear → act] per hidden width → Linear (the classic dense head)."""
    layers: list[nn.Module] = [nn.Flatten()]
    for h in hidden:
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        layers += [nn.Linear(width, h), activation(act)]
        width = h
    return nn.Sequential(*layers, nn.Linear(width, num_outputs))


class FeaturesAndHead(nn.Module):
    """``features`` (B, C, *spatial) → ``head`` → (B, num_outputs)."""

    def __init__(self, features: nn.Module, head: nn.Module):
        super().__init__()
        self.features, self.head = features, head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def as_sequence(x: torch.Tensor, input_kind: str) -> torch.Tensor:
    """What sequence models read, (B, L, F): a signal (B, C, L) is read along L with C features, an
    image (B, C, H, W) row by row (L = H, F = C·W), a sequence as it is."""
    if input_kind == "signal":
        return x.transpose(1, 2)
    if input_kind == "image":
        return x.permute(0, 2, 1, 3).flatten(2)
    return x
