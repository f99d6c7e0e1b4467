"""Optimizer registry: a config name → a factory ``params -> torch.optim.Optimizer``.

Each entry declares the hyperparameters it accepts (``accepts``); an override it does not accept
is an error that names it and lists what is accepted, instead of being silently dropped.
"""
from __future__ import annotations

from typing import Any, Callable, Iterable

import torch

from lightning_modules.registry import Registry

OPTIMIZERS = Registry("optimizer")

OptimizerFactory = Callable[[Iterable[torch.nn.Parameter]], torch.optim.Optimizer]


@OPTIMIZERS.register("sgd", accepts=("lr", "momentum", "dampening", "nesterov", "weight_decay"))
def sgd(params, lr: float, **kwargs: Any) -> torch.optim.Optimizer:
    return torch.optim.SGD(params, lr=lr, **kwargs)


@OPTIMIZERS.register("adam", accepts=("lr", "betas", "eps", "weight_decay", "amsgrad"))
def adam(params, lr: float, betas=(0.9, 0.999), **kwargs: Any) -> torch.optim.Optimizer:
    return torch.optim.Adam(params, lr=lr, betas=tuple(betas), **kwargs)


def optimizer_factory(name: str, **hparams: Any) -> OptimizerFactory:
    """``params -> optimizer`` with ``hparams`` bound, checked against the entry's ``accepts``."""
    if "lr" not in hparams:
        raise ValueError(f"optimizer.lr: missing; optimizer {name!r} needs it")
    return OPTIMIZERS.partial(name, **hparams)
