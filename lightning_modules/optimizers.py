"""Optimizer registry: a config name → ``torch.optim.Optimizer``, from torch.optim and
pytorch-optimizer (AdamP, SAM) rather than hand-written update rules.

Each entry declares the hyperparameters it accepts (``accepts``) and what it is: ``elementwise``
(each parameter entry's update depends only on its own gradient history, so K networks stacked in
one tensor are trained exactly as K separate runs: ``numerics/members.py``), ``two_pass`` (the loss
is evaluated twice per step, through Lightning's closure: SAM), its ``family`` (a key of
``FAMILY_TITLES``: the optimizer study's panels and claims group by it) and, for the tests,
``expect`` (the class it builds). An override it does not accept is an error that names it.
Weight decay comes from ``regularization.weight_decay`` and is given per parameter group: by
default only to weight matrices and kernels (``p.ndim >= 2``), not to biases and normalization
weights (``regularization.decay_all=true`` decays everything).
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Optional

import torch
from torch import nn

from core.errors import ConfigError
from core.registry import Registry
from core.rules import check_all
from lightning_modules.rules import OPTIMIZER, REGULARIZATION

OPTIMIZERS = Registry("optimizer", rules=OPTIMIZER)
#: each entry's ``family``, and how the optimizer study titles it
FAMILY_TITLES = {"sgd": "SGD and momentum", "adaptive": "adaptive step size", "adam": "Adam family"}

OptimizerFactory = Callable[[nn.Module], torch.optim.Optimizer]
ADAM_KEYS = ("lr", "betas", "eps")


@OPTIMIZERS.register("sgd", family="sgd", accepts=("lr", "momentum", "dampening", "nesterov"), elementwise=True, expect="SGD")
def sgd(params, lr: float, **kwargs: Any) -> torch.optim.Optimizer:
    return torch.optim.SGD(params, lr=lr, **kwargs)


@OPTIMIZERS.register("momentum", family="sgd", accepts=("lr", "momentum", "dampening"), elementwise=True, expect="SGD")
def momentum(params, lr: float, momentum: float = 0.9, **kwargs: Any) -> torch.optim.Optimizer:
    """SGD with heavy-ball (Polyak) momentum."""
    return torch.optim.SGD(params, lr=lr, momentum=momentum, **kwargs)


@OPTIMIZERS.register(
    "nesterov", family="sgd", accepts=("lr", "momentum"), elementwise=True, expect="SGD", expect_group={"nesterov": True, "momentum": 0.9}
)
def nesterov(params, lr: float, momentum: float = 0.9) -> torch.optim.Optimizer:
    """SGD with Nesterov momentum (the gradient is taken at the look-ahead point)."""
    return torch.optim.SGD(params, lr=lr, momentum=momentum, nesterov=True)


@OPTIMIZERS.register(
    "adagrad", family="adaptive", accepts=("lr", "lr_decay", "eps", "initial_accumulator_value"), elementwise=True, expect="Adagrad"
)
def adagrad(params, lr: float, **kwargs: Any) -> torch.optim.Optimizer:
    return torch.optim.Adagrad(params, lr=lr, **kwargs)


@OPTIMIZERS.register("adadelta", family="adaptive", accepts=("lr", "rho", "eps"), elementwise=True, expect="Adadelta")
def adadelta(params, lr: float, **kwargs: Any) -> torch.optim.Optimizer:
    return torch.optim.Adadelta(params, lr=lr, **kwargs)


@OPTIMIZERS.register(
    "rmsprop", family="adaptive", accepts=("lr", "alpha", "eps", "momentum", "centered"), elementwise=True, expect="RMSprop"
)
def rmsprop(params, lr: float, **kwargs: Any) -> torch.optim.Optimizer:
    return torch.optim.RMSprop(params, lr=lr, **kwargs)


@OPTIMIZERS.register("adam", family="adam", accepts=(*ADAM_KEYS, "amsgrad"), elementwise=True, expect="Adam")
def adam(params, lr: float, betas=(0.9, 0.999), **kwargs: Any) -> torch.optim.Optimizer:
    return torch.optim.Adam(params, lr=lr, betas=tuple(betas), **kwargs)


@OPTIMIZERS.register("adamw", family="adam", accepts=(*ADAM_KEYS, "amsgrad"), elementwise=True, expect="AdamW")
def adamw(params, lr: float, betas=(0.9, 0.999), **kwargs: Any) -> torch.optim.Optimizer:
    """Adam with decoupled weight decay (Loshchilov & Hutter)."""
    return torch.optim.AdamW(params, lr=lr, betas=tuple(betas), **kwargs)


@OPTIMIZERS.register("radam", family="adam", accepts=ADAM_KEYS, elementwise=True, expect="RAdam")
def radam(params, lr: float, betas=(0.9, 0.999), **kwargs: Any) -> torch.optim.Optimizer:
    return torch.optim.RAdam(params, lr=lr, betas=tuple(betas), **kwargs)


@OPTIMIZERS.register("nadam", family="adam", accepts=(*ADAM_KEYS, "momentum_decay"), elementwise=True, expect="NAdam")
def nadam(params, lr: float, betas=(0.9, 0.999), **kwargs: Any) -> torch.optim.Optimizer:
    return torch.optim.NAdam(params, lr=lr, betas=tuple(betas), **kwargs)


@OPTIMIZERS.register("adamp", family="adam", accepts=(*ADAM_KEYS, "delta", "wd_ratio", "nesterov"), expect="AdamP")
def adamp(params, lr: float, betas=(0.9, 0.999), **kwargs: Any) -> torch.optim.Optimizer:
    """AdamP (Heo et al. 2021): Adam that removes the radial component of scale-invariant weights
    (a projection per parameter tensor: not elementwise)."""
    from pytorch_optimizer.optimizer.adamp import AdamP  # ~0.5 s import: only when chosen

    return AdamP(params, lr=lr, betas=tuple(betas), **kwargs)


@OPTIMIZERS.register("sam", family="sgd", accepts=None, wraps=True, two_pass=True, expect="ClosureSAM")
def sam(params, base: str, rho: float = 0.05, adaptive: bool = False, **base_hparams: Any) -> torch.optim.Optimizer:
    """Sharpness-aware minimization (Foret et al. 2021) around the ``base`` optimizer entry."""
    from lightning_modules.sam import ClosureSAM

    return ClosureSAM(params, base_optimizer=OPTIMIZERS.get(base).factory, rho=rho, adaptive=adaptive, **base_hparams)


def param_groups(module: nn.Module, weight_decay: float, decay_all: bool = False) -> list[dict]:
    """Two groups: weights that decay (``p.ndim >= 2``, or all with ``decay_all``) and the rest. A
    module whose parameters stack several networks' (``numerics/members.py``) says which are
    weights itself, by a method ``decays(name, parameter) -> bool``."""
    decays = getattr(module, "decays", lambda name, p: p.ndim >= 2)
    decay, no_decay = [], []
    for name, p in module.named_parameters():
        if p.requires_grad:
            (decay if decay_all or decays(name, p) else no_decay).append(p)
    return [g for g in ({"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}) if g["params"]]


def _check_sam(hparams: dict, section: str) -> None:
    base = hparams.get("base")
    if base is None:
        raise ConfigError(f"{section}.base: missing; sam wraps a base optimizer, e.g. {section}.base=momentum")
    entry = OPTIMIZERS.get(base, key=f"{section}.base")  # lists the valid names when unknown
    if entry.info.get("wraps"):
        raise ConfigError(
            f"{section}.base={base!r}: sam cannot wrap itself; use one of: {', '.join(n for n in OPTIMIZERS.list() if n != 'sam')}"
        )
    for key in hparams:
        if key not in ("base", "rho", "adaptive") and key not in entry.info["accepts"]:
            raise ConfigError(
                f"{section}.{key}: not accepted by sam around {base!r}; accepted: base, rho, adaptive, {', '.join(entry.info['accepts'])}"
            )


def optimizer_factory(name: str, weight_decay: float = 0.0, decay_all: bool = False, **hparams: Any) -> OptimizerFactory:
    """``module -> optimizer`` with ``hparams`` bound and checked against the entry's ``accepts``;
    ``weight_decay`` is applied per parameter group (see ``param_groups``)."""
    return optimizer_from_spec({"name": name, "weight_decay": weight_decay, "decay_all": decay_all, **hparams})


def optimizer_from_spec(spec: Mapping[str, Any], section: str = "optimizer") -> OptimizerFactory:
    """``optimizer_factory`` for a spec (``name``, ``weight_decay``, ``decay_all`` and the entry's
    keys) that came from config key ``section``, which errors name (``model.generator_optimizer``
    for the GAN's own)."""
    hparams = dict(spec)
    name, weight_decay, decay_all = hparams.pop("name"), hparams.pop("weight_decay", 0.0), hparams.pop("decay_all", False)
    if "lr" not in hparams:
        raise ConfigError(f"{section}.lr: missing; optimizer {name!r} needs it")
    check_all(REGULARIZATION, {"weight_decay": weight_decay, "decay_all": decay_all}, "regularization")
    if name == "sam":
        _check_sam(hparams, section)
    make = OPTIMIZERS.partial(name, section, **hparams)

    def build(module: nn.Module) -> torch.optim.Optimizer:
        return make(param_groups(module, weight_decay, decay_all))

    return build


def is_perturbed(optimizer: Optional[torch.optim.Optimizer]) -> bool:
    """True while a two-pass optimizer (SAM) evaluates the loss at perturbed weights."""
    return bool(getattr(optimizer, "perturbed", False))
