"""The optimizer of the studies that train their members as one vectorized ensemble
(``numerics/ensemble.py``: ``study=bagging``, ``study=bias_variance``), from the optimizer
registry like every other run.

``optimizer=`` chooses the update rule and its keys (``optimizer.momentum``, ``optimizer.betas``,
...); each part of the study keeps its own learning rate (``study.<part>.lr``: parts differ, as the
weak learners of boosting and the bagged networks do), so ``optimizer.lr`` is refused rather than
ignored. ``regularization.weight_decay`` (and ``decay_all``) reach the optimizer; the other
regularizers and schedulers are not applied by these plain MLPs and must stay neutral, and the
groups the studies do not read (model=, data=, trainer.*, seed=, ...) are refused on the command line."""

from __future__ import annotations

from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from core.errors import ConfigError
from core.rules import check
from experiments.build import check_regularizers, routed
from lightning_modules.optimizers import OPTIMIZERS, OptimizerFactory, optimizer_from_spec
from lightning_modules.rules import LR

APPLIED = frozenset({"weight_decay", "decay_all"})
USED = ("study", "optimizer", "regularization", "scheduler", "hydra")  # the command line's groups these studies read
GROUP = Path(__file__).resolve().parents[1] / "configs" / "optimizer"


def check_optimizer(cfg: DictConfig, lr_keys: tuple[str, ...]) -> None:
    """Refuse what the ensemble cannot honour, naming the key, before any part trains: an optimizer
    that couples the members, a part's learning rate out of range, ``optimizer.lr`` set anywhere
    (command line, preset) to other than its option's value, a regularizer or scheduler that would
    be ignored."""
    study, name = f"study={cfg.study.name}", cfg.optimizer.name
    for given in HydraConfig.get().overrides.task if HydraConfig.initialized() else []:
        if given.lstrip("+~").split("=", 1)[0].split(".")[0] not in USED:  # model=, data=, trainer.*, seed=, ...
            raise ConfigError(
                f"{given.lstrip('+~')}: not used by {study}, which trains its own MLPs on its own data (the study.* keys) "
                "with optimizer= and regularization.weight_decay"
            )
    entry = OPTIMIZERS.get(name, key="optimizer")
    if not entry.info.get("elementwise"):
        fine = ", ".join(e.name for e in OPTIMIZERS if e.info.get("elementwise"))
        raise ConfigError(
            f"optimizer={name}: {study} trains its members as one vectorized ensemble, which needs an elementwise optimizer "
            f"(each member's update its own); elementwise: {fine}"
        )
    for key in lr_keys:
        check(key, OmegaConf.select(cfg, key), LR)
    option = GROUP / f"{name}.yaml"
    default = OmegaConf.load(option).get("lr") if option.exists() else None
    if cfg.optimizer.get("lr") != default:
        raise ConfigError(f"optimizer.lr={cfg.optimizer.get('lr')}: {study} sets each part's learning rate; use {' or '.join(lr_keys)}")
    check_regularizers(cfg.regularization, APPLIED, f"{study} (plain MLPs, weight decay only)")
    if cfg.scheduler.name != "none":
        raise ConfigError(f"scheduler={cfg.scheduler.name}: {study} trains at a constant learning rate; use scheduler=none")
    optimizer_for(cfg, 1e-3)  # the optimizer's own keys checked now, not after the first part


def optimizer_for(cfg: DictConfig, lr: float) -> OptimizerFactory:
    """The ``optimizer`` group's optimizer at the learning rate ``lr``, with the run's weight decay."""
    keys = OmegaConf.to_container(cfg.optimizer, resolve=True)
    keys.pop("lr", None)
    reg = cfg.regularization
    spec = routed("optimizer", keys, {"weight_decay": reg.weight_decay, "decay_all": reg.decay_all})
    return optimizer_from_spec({**spec, "lr": lr})
