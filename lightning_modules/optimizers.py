"""Optimizer registry: a config name → ``torch.optim.Optimizer``, from torch.optim and
pytorch-optimizer (AdamP, SAM) rather than hand-written update rules.

Each entry declares the hyperparameters it accepts (``accepts``); an override it does not accept
is an error that names it. Weight decay comes from ``regularization.weight_decay`` and is given
per parameter group: by default only to weight matrices and kernels (``p.ndim >= 2``), not to
biases and normalization weights (``regularization.decay_all=true`` decays everything).
"""

from __future__ import annotations

from typing import Any, Callable, Optional

import torch
from torch import nn

from core.errors import ConfigError
from core.registry import Registry

OPTIMIZERS = Registry("optimizer")

OptimizerFactory = Callable[[nn.Module], torch.optim.Optimizer]
ADAM_KEYS = ("lr", "betas", "eps")


@OPTIMIZERS.register("sgd", accepts=("lr", "momentum", "dampening", "nesterov"))
def sgd(params, lr: float, **kwargs: Any) -> torch.optim.Optimizer:
    return torch.optim.SGD(params, lr=lr, **kwargs)


@OPTIMIZERS.register("momentum", accepts=("lr", "momentum", "dampening"))
def momentum(params, lr: float, momentum: float = 0.9, **kwargs: Any) -> torch.optim.Optimizer:
    """SGD with heavy-ball (Polyak) momentum."""
    return torch.optim.SGD(params, lr=lr, momentum=momentum, **kwargs)


@OPTIMIZERS.register("nesterov", accepts=("lr", "momentum"))
def nesterov(params, lr: float, momentum: float = 0.9) -> torch.optim.Optimizer:
    """SGD with Nesterov momentum (the gradient is taken at the look-ahead point)."""
    return torch.optim.SGD(params, lr=lr, momentum=momentum, nesterov=True)


@OPTIMIZERS.register("adagrad", accepts=("lr", "lr_decay", "eps", "initial_accumulator_value"))
def adagrad(params, lr: float, **kwargs: Any) -> torch.optim.Optimizer:
    return torch.optim.Adagrad(params, lr=lr, **kwargs)


@OPTIMIZERS.register("adadelta", accepts=("lr", "rho", "eps"))
def adadelta(params, lr: float, **kwargs: Any) -> torch.optim.Optimizer:
    return torch.optim.Adadelta(params, lr=lr, **kwargs)


@OPTIMIZERS.register("rmsprop", accepts=("lr", "alpha", "eps", "momentum", "centered"))
def rmsprop(params, lr: float, **kwargs: Any) -> torch.optim.Optimizer:
    return torch.optim.RMSprop(params, lr=lr, **kwargs)


@OPTIMIZERS.register("adam", accepts=(*ADAM_KEYS, "amsgrad"))
def adam(params, lr: float, betas=(0.9, 0.999), **kwargs: Any) -> torch.optim.Optimizer:
    return torch.optim.Adam(params, lr=lr, betas=tuple(betas), **kwargs)


@OPTIMIZERS.register("adamw", accepts=(*ADAM_KEYS, "amsgrad"))
def adamw(params, lr: float, betas=(0.9, 0.999), **kwargs: Any) -> torch.optim.Optimizer:
    """Adam with decoupled weight decay (Loshchilov & Hutter)."""
    return torch.optim.AdamW(params, lr=lr, betas=tuple(betas), **kwargs)


@OPTIMIZERS.register("radam", accepts=ADAM_KEYS)
def radam(params, lr: float, betas=(0.9, 0.999), **kwargs: Any) -> torch.optim.Optimizer:
    return torch.optim.RAdam(params, lr=lr, betas=tuple(betas), **kwargs)


@OPTIMIZERS.register("nadam", accepts=(*ADAM_KEYS, "momentum_decay"))
def nadam(params, lr: float, betas=(0.9, 0.999), **kwargs: Any) -> torch.optim.Optimizer:
    return torch.optim.NAdam(params, lr=lr, betas=tuple(betas), **kwargs)


@OPTIMIZERS.register("adamp", accepts=(*ADAM_KEYS, "delta", "wd_ratio", "nesterov"))
def adamp(params, lr: float, betas=(0.9, 0.999), **kwargs: Any) -> torch.optim.Optimizer:
    """AdamP (Heo et al. 2021): Adam that removes the radial component of scale-invariant weights."""
    from pytorch_optimizer.optimizer.adamp import AdamP  # ~0.5 s import: only when chosen

    return AdamP(params, lr=lr, betas=tuple(betas), **kwargs)


@OPTIMIZERS.register("sam", accepts=None, wraps=True)
def sam(params, base: str, rho: float = 0.05, adaptive: bool = False, **base_hparams: Any) -> torch.optim.Optimizer:
    """Sharpness-aware minimization (Foret et al. 2021) around the ``base`` optimizer entry."""
    from lightning_modules.sam import ClosureSAM

    return ClosureSAM(params, base_optimizer=OPTIMIZERS.get(base).factory, rho=rho, adaptive=adaptive, **base_hparams)


def param_groups(module: nn.Module, weight_decay: float, decay_all: bool = False) -> list[dict]:
    """Two groups: weights that decay (``p.ndim >= 2``, or all with ``decay_all``) and the rest."""
    decay, no_decay = [], []
    for p in module.parameters():
        if p.requires_grad:
            (decay if decay_all or p.ndim >= 2 else no_decay).append(p)
    return [g for g in ({"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}) if g["params"]]


def _check_sam(hparams: dict) -> None:
    base = hparams.get("base")
    if base is None:
        raise ConfigError("optimizer.base: missing; sam wraps a base optimizer, e.g. optimizer.base=momentum")
    entry = OPTIMIZERS.get(base, key="optimizer.base")  # lists the valid names when unknown
    if entry.info.get("wraps"):
        raise ConfigError(
            f"optimizer.base={base!r}: sam cannot wrap itself; use one of: {', '.join(n for n in OPTIMIZERS.list() if n != 'sam')}"
        )
    for key in hparams:
        if key not in ("base", "rho", "adaptive") and key not in entry.info["accepts"]:
            raise ConfigError(
                f"optimizer.{key}: not accepted by sam around {base!r}; accepted: base, rho, adaptive, {', '.join(entry.info['accepts'])}"
            )


def optimizer_factory(name: str, weight_decay: float = 0.0, decay_all: bool = False, **hparams: Any) -> OptimizerFactory:
    """``module -> optimizer`` with ``hparams`` bound and checked against the entry's ``accepts``;
    ``weight_decay`` is applied per parameter group (see ``param_groups``)."""
    if "lr" not in hparams:
        raise ConfigError(f"optimizer.lr: missing; optimizer {name!r} needs it")
    if name == "sam":
        _check_sam(hparams)
    make = OPTIMIZERS.partial(name, **hparams)

    def build(module: nn.Module) -> torch.optim.Optimizer:
        return make(param_groups(module, weight_decay, decay_all))

    return build


def is_perturbed(optimizer: Optional[torch.optim.Optimizer]) -> bool:
    """True while a two-pass optimizer (SAM) evaluates the loss at perturbed weights."""
    return bool(getattr(optimizer, "perturbed", False))
