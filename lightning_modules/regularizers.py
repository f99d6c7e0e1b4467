"""Regularizers applied inside the training step: the explicit parameter-norm penalty (L1/L2),
Gaussian input noise and Gaussian weight noise. Each is a no-op at 0 and never acts at eval.

Weight noise evaluates the network at ``w + n`` through ``torch.func.functional_call``: the
gradient is taken at the noisy point and applied to the clean weights, which are never modified,
so there is nothing to restore and no drift from adding and subtracting noise.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.func import functional_call

from core.rules import check_all
from lightning_modules.rules import REGULARIZATION


@dataclass(frozen=True)
class Regularization:
    l1: float = 0.0  # coefficient of sum |w|
    l2: float = 0.0  # coefficient of sum w² (the loss penalty; weight_decay is the optimizer's)
    decay_all: bool = False  # penalize biases and normalization weights too (default: p.ndim >= 2 only)
    input_noise: float = 0.0  # std of Gaussian noise added to inputs in training
    weight_noise: float = 0.0  # std of Gaussian noise added to weights for each training forward

    def __post_init__(self):
        check_all(REGULARIZATION, vars(self), "regularization")


def penalized(module: nn.Module, decay_all: bool):
    """The parameters a norm penalty applies to: weight matrices and kernels, or all."""
    return [p for p in module.parameters() if p.requires_grad and (decay_all or p.ndim >= 2)]


def norm_penalty(module: nn.Module, l1: float, l2: float, decay_all: bool = False) -> torch.Tensor:
    """``l1 · Σ|w| + l2 · Σ w²`` over ``penalized(module)``."""
    params = penalized(module, decay_all)
    total = params[0].new_zeros(())
    if l1:
        total = total + l1 * sum(p.abs().sum() for p in params)
    if l2:
        total = total + l2 * sum(p.pow(2).sum() for p in params)
    return total


def with_input_noise(x: torch.Tensor, std: float) -> torch.Tensor:
    return x + std * torch.randn_like(x) if std > 0 else x


def forward_with_weight_noise(net: nn.Module, x: torch.Tensor, std: float) -> torch.Tensor:
    """``net(x)`` evaluated at weights ``w + N(0, std²)`` (all trainable parameters)."""
    noisy = {name: p + std * torch.randn_like(p) for name, p in net.named_parameters() if p.requires_grad}
    return functional_call(net, noisy, (x,))
