"""The members of ``study=bagging`` and ``study=bias_variance``: MLPs built as a run builds its module
(the model registry's ``mlp``, the loss, the ``optimizer=`` chosen with its keys, the scheduler and
the regularizers: ``experiments/build.py::supervised_module``) and trained K at a time as one seeded
fit (``lightning_modules/members.py``, the mechanism of ``seeds=[...]``), each member initialized and
shuffled by its own seed and trained on its own rows of the study's tensors (a bootstrap resample,
its own draw of data: ``datamodules/member_loader.py``).

Each part of a study keeps its own learning rate (``study.<part>.lr``: parts differ, as the weak
learners of boosting and the bagged networks do), so ``optimizer.lr`` is refused rather than
ignored. The study trains for a fixed number of epochs without a validation split, so what needs one
(early stopping, ``scheduler=plateau``) is refused, as are the data module's regularizers
(augmentation, Mixup/CutMix) and label smoothing, which the studies' own tensors and regression parts
do not take; the groups the studies do not read (``model=``, ``data=``, ``trainer.*``, ``seed=``,
...) are refused on the command line (``trainer=`` picks the device)."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pytorch_lightning as pl
import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf, open_dict

from core.errors import ConfigError
from core.rules import check, fmt
from datamodules.member_loader import MemberBatchLoader
from experiments.build import check_components, check_regularizers, supervised_module
from experiments.seeds import check_member_optimizer
from experiments.train import QUIET, TrainingFailed
from lightning_modules.base import NonFiniteLoss
from lightning_modules.members import MembersModule
from lightning_modules.rules import LR

APPLIED = frozenset({"weight_decay", "decay_all", "l1", "l2", "dropout", "batch_norm", "input_noise", "weight_noise", "grad_clip"})
USED = ("study", "optimizer", "regularization", "scheduler", "hydra")  # the command line's groups these studies read
GROUP = Path(__file__).resolve().parents[1] / "configs" / "optimizer"


def refuse_unread(study: str, reads: Sequence[str], said: str, instead: Mapping[str, str] = {}) -> None:
    """Each command-line override the study does not read, refused in one line naming it: a key or
    group of ``instead`` with what to use instead, any other group outside ``reads`` (``trainer=``,
    the device, is read by all) as ``not used by study=<name>, which <said>``."""
    for given in HydraConfig.get().overrides.task if HydraConfig.initialized() else []:
        given = given.lstrip("+~")
        key = given.split("=", 1)[0]
        top = key.split(".")[0]
        use = instead.get(key, instead.get(top))
        if use is not None:
            raise ConfigError(f"{given}: study={study} {use}")
        if key != "trainer" and top not in reads:  # model=, data=, trainer.*, seed=, ...
            raise ConfigError(f"{given}: not used by study={study}, which {said}")


def check_trainer(cfg: DictConfig) -> None:
    """One device, every seed in one fit: a multi-device trainer or ``study.one_fit=false`` would be ignored."""
    study = f"study={cfg.study.name}"
    devices, strategy = cfg.trainer.get("devices", 1), str(cfg.trainer.get("strategy", "auto"))
    if devices != 1 or strategy != "auto" or cfg.trainer.get("num_nodes", 1) != 1:
        raise ConfigError(
            f"trainer.devices={devices} trainer.strategy={strategy}: {study} trains its members in one process; "
            "use trainer=cpu or trainer=gpu"
        )
    if cfg.study.get("one_fit", True) is not True:
        raise ConfigError(f"study.one_fit={fmt(cfg.study.one_fit)}: {study} always trains its members together as seeded fits")


def check_optimizer(cfg: DictConfig, lr_keys: tuple[str, ...]) -> None:
    """Refuse what the members cannot honour, naming the key, before any part trains: an optimizer
    that would mix the members, a part's learning rate out of range, ``optimizer.lr`` set anywhere
    (command line, preset) to other than its option's value, a regularizer or scheduler that would
    be ignored, a trainer of several devices."""
    study, name = f"study={cfg.study.name}", cfg.optimizer.name
    refuse_unread(
        cfg.study.name,
        USED,
        "trains its own MLPs on its own data (the study.* keys) with optimizer=, scheduler=, regularization.* and trainer= (the device)",
    )
    check_member_optimizer(cfg, study)
    for key in lr_keys:
        check(key, OmegaConf.select(cfg, key), LR)
    option = GROUP / f"{name}.yaml"
    default = OmegaConf.load(option).get("lr") if option.exists() else None
    if cfg.optimizer.get("lr") != default:
        raise ConfigError(f"optimizer.lr={cfg.optimizer.get('lr')}: {study} sets each part's learning rate; use {' or '.join(lr_keys)}")
    check_regularizers(cfg.regularization, APPLIED, f"{study} (fixed epochs, no validation split, the study's own tensors)")
    if cfg.scheduler.name == "plateau":
        raise ConfigError(f"scheduler=plateau: {study} has no validation split to follow; use another scheduler (step, cosine, ...)")
    check_trainer(cfg)
    check_components(cfg)  # the optimizer's and scheduler's own keys, now rather than after the first part


def fit_members(
    cfg: DictConfig,
    lr: float,
    seeds: Sequence[int],
    hidden: Sequence[int],
    task: str,
    x: torch.Tensor,
    y: torch.Tensor,
    rows: torch.Tensor,
    epochs: int,
    batch_size: int,
    num_outputs: int,
    model: dict | None = None,
    kind: str = "tabular",
    callbacks: Sequence[pl.Callback] = (),
    max_steps: int | None = None,
) -> MembersModule:
    """K = len(seeds) MLPs with hidden widths ``hidden`` trained at once for ``epochs``: member i is the
    run ``seed=seeds[i]`` would make on ``(x[rows[i]], y[rows[i]])`` at learning rate ``lr``. Returned
    on the CPU in eval mode: ``module(x)`` is every member's output, (K, n, out).

    ``model``: another network from the model registry instead (``{"name": "mlp", "hidden": [...],
    "activation": "tanh", "init": "xavier_normal"}``; ``hidden`` is then unused), on inputs of ``kind``.
    ``callbacks``: Lightning callbacks of the fit (a study's own measurements during training).
    ``max_steps``: train exactly that many optimizer steps instead (``epochs`` is then unused)."""
    member = cfg.copy()
    with open_dict(member):
        spec = model if model is not None else {"name": "mlp", "hidden": [int(h) for h in hidden], "activation": "relu"}
        member.model = OmegaConf.create(dict(spec))
        member.optimizer.lr = float(lr)
    lones = []
    for seed in seeds:
        pl.seed_everything(seed, verbose=False)  # as a run's network is initialized: after seeding with its seed
        lones.append(supervised_module(member, list(x.shape[1:]), kind, num_outputs, task))
    module = MembersModule(lones, seeds, logged=False)
    loader = MemberBatchLoader((x, y), batch_size, seeds, shuffle=True, rows=rows)
    t = cfg.trainer
    lightning = logging.getLogger("pytorch_lightning")
    level = lightning.level
    lightning.setLevel(logging.WARNING)  # its device lines, once per fit, would fill the study's log
    try:
        with warnings.catch_warnings():
            for pattern in (*QUIET, r".*validation_step.*", r".*GPU available but not used.*"):
                warnings.filterwarnings("ignore", message=pattern)
            pl.Trainer(
                accelerator=t.accelerator,
                devices=1,
                precision=t.precision,
                deterministic=t.deterministic,
                max_epochs=epochs if max_steps is None else -1,
                max_steps=-1 if max_steps is None else max_steps,
                gradient_clip_val=cfg.regularization.grad_clip,
                limit_val_batches=0,
                num_sanity_val_steps=0,
                logger=False,
                enable_checkpointing=False,
                enable_progress_bar=False,
                enable_model_summary=False,
                callbacks=list(callbacks),
            ).fit(module, train_dataloaders=loader)
    except NonFiniteLoss as exc:  # one line and exit 3, as a run's divergence; the finished parts stay in parts/
        what = f"width(s) {list(hidden)}" if model is None else f"model {dict(spec)}"
        raise TrainingFailed(
            f"study={cfg.study.name}: the members of {what} diverged at lr {lr:g} ({exc}); lower that part's study.*.lr"
        ) from exc
    finally:
        lightning.setLevel(level)
    return module.cpu().eval()


def mnist1d_flat():
    """MNIST-1D's 4,000 training and 1,000 test signals as 40 features, standardized by the training
    split's mean and std (one channel): numpy ``x, y, x_test, y_test`` and the number of classes."""
    from datamodules.datasets import load

    ds = load("mnist1d")
    x, xt = ds.x.reshape(len(ds.x), -1), ds.x_test.reshape(len(ds.x_test), -1)
    mean, std = x.mean(), x.std()
    return (x - mean) / std, ds.y, (xt - mean) / std, ds.y_test, ds.num_classes


def relabel(y: np.ndarray, fraction: float, rng: np.random.Generator, classes: int) -> np.ndarray:
    """``y`` with each label, with probability ``fraction``, replaced by another class drawn uniformly (never its own)."""
    y = y.copy()
    flip = rng.random(y.shape) < fraction
    y[flip] = (y[flip] + rng.integers(1, classes, flip.sum())) % classes
    return y


@torch.no_grad()
def predict(module: MembersModule, x: torch.Tensor, chunk: int = 8192) -> torch.Tensor:
    """Every member's output on the same inputs ``x`` (n, ...): (K, n, out)."""
    return torch.cat([module(x[i : i + chunk]) for i in range(0, len(x), chunk)], dim=1)


@torch.no_grad()
def predict_own(module: MembersModule, x: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """Each member's output on its own rows of ``x`` (its training set): (K, n, out)."""
    return module.net(x[rows])
