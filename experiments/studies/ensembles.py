"""The optimizer of the studies that train their members as one vectorized ensemble
(``numerics/ensemble.py``: ``study=bagging``, ``study=bias_variance``), from the optimizer
registry like every other run.

``optimizer=`` chooses the update rule and its keys (``optimizer.momentum``, ``optimizer.betas``,
...); each part of the study keeps its own learning rate (``study.<part>.lr``: parts differ, as the
weak learners of boosting and the bagged networks do), so ``optimizer.lr`` is refused rather than
ignored. ``regularization.weight_decay`` (and ``decay_all``) reach the optimizer; the other
regularizers and schedulers are not applied by these plain MLPs and must stay neutral."""

from __future__ import annotations

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from core.errors import ConfigError
from experiments.build import NEUTRAL, neutral_hint
from lightning_modules.optimizers import OPTIMIZERS, OptimizerFactory, optimizer_factory

APPLIED = ("weight_decay", "decay_all")


def check_optimizer(cfg: DictConfig, lr_keys: tuple[str, ...]) -> None:
    """Refuse what the ensemble cannot honour, naming the key: an optimizer that couples the members,
    ``optimizer.lr`` given on the command line, a regularizer or scheduler that would be ignored."""
    study, name = f"study={cfg.study.name}", cfg.optimizer.name
    entry = OPTIMIZERS.get(name, key="optimizer")
    if not entry.info.get("elementwise"):
        fine = ", ".join(e.name for e in OPTIMIZERS if e.info.get("elementwise"))
        raise ConfigError(
            f"optimizer={name}: {study} trains its members as one vectorized ensemble, which needs an elementwise optimizer "
            f"(each member's update its own); elementwise: {fine}"
        )
    given = HydraConfig.get().overrides.task if HydraConfig.initialized() else []
    lr = next((o for o in given if o.lstrip("+").startswith("optimizer.lr=")), None)
    if lr is not None:
        raise ConfigError(f"{lr.lstrip('+')}: {study} sets each part's learning rate; use {' or '.join(lr_keys)}")
    for key, neutral in NEUTRAL.items():
        if key not in APPLIED and cfg.regularization[key] != neutral:
            raise ConfigError(
                f"regularization.{key}={cfg.regularization[key]}: not applied by {study} (plain MLPs, weight decay only); "
                f"{neutral_hint(neutral)}"
            )
    if cfg.scheduler.name != "none":
        raise ConfigError(f"scheduler={cfg.scheduler.name}: {study} trains at a constant learning rate; use scheduler=none")
    optimizer_for(cfg, 1e-3)  # the optimizer's own keys checked now, not after the first part


def optimizer_for(cfg: DictConfig, lr: float) -> OptimizerFactory:
    """The ``optimizer`` group's optimizer at the learning rate ``lr``, with the run's weight decay."""
    keys = OmegaConf.to_container(cfg.optimizer, resolve=True)
    keys.pop("name"), keys.pop("lr", None)
    reg = cfg.regularization
    return optimizer_factory(cfg.optimizer.name, weight_decay=reg.weight_decay, decay_all=reg.decay_all, lr=float(lr), **keys)
