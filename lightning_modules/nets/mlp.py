"""Multi-layer perceptron: flatten → [Linear → (BatchNorm) → act → (Dropout)] × depth → Linear.

With ``hidden=[]`` it is multinomial logistic (or linear) regression.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

import torch
from torch import nn

from core.errors import ConfigError
from lightning_modules.nets import MODELS
from lightning_modules.nets.common import activation as make_activation
from lightning_modules.nets.common import check_dropout


@MODELS.register("mlp", inputs=("tabular", "image", "signal", "sequence"), param_count=(50_000, 55_000))
class MLP(nn.Module):
    def __init__(
        self,
        input_shape: Sequence[int],
        num_outputs: int,
        hidden: Sequence[int] = (256, 256),
        activation: str = "relu",
        dropout: float = 0.0,
        batch_norm: Optional[bool] = None,  # None: off
    ):
        super().__init__()
        if not input_shape or any(int(d) < 1 for d in input_shape):
            raise ConfigError(f"model 'mlp' cannot take input shape {tuple(input_shape)}")
        if any(not isinstance(h, int) or isinstance(h, bool) or h < 1 for h in hidden):
            raise ConfigError(f"model.hidden={list(hidden)}: must be a list of positive integers")
        check_dropout(dropout)
        width = math.prod(int(d) for d in input_shape)
        layers: list[nn.Module] = [nn.Flatten()]  # (B, *input_shape) → (B, width)
        for h in hidden:
            layers.append(nn.Linear(width, h))
            if batch_norm:
                layers.append(nn.BatchNorm1d(h))
            layers.append(make_activation(activation))
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = h
        layers.append(nn.Linear(width, num_outputs))  # (B, num_outputs)
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)
