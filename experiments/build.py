"""Config → objects. The only place that knows both the config layout and the components, so
networks, modules and DataModules never see Hydra. Each ``regularization`` key is routed here to
the component that applies it."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import pytorch_lightning as pl
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.callbacks import Callback, EarlyStopping, ModelCheckpoint
from pytorch_lightning.loggers import Logger, TensorBoardLogger

from callbacks.checkpoint_io import AtomicCheckpointIO
from callbacks.history import History
from callbacks.plots import RunFigures
from callbacks.preemption import Preemption
from callbacks.sharpness import SharpnessProbe
from callbacks.progress import progress_callbacks
from datamodules.mixing import MixConfig
from datamodules.tensor_datamodule import TensorDataModule
from lightning_modules.base import SupervisedModule
from lightning_modules.classification import ClassificationModule
from lightning_modules.losses import build_loss
from lightning_modules.nets import build_net
from lightning_modules.optimizers import optimizer_factory
from lightning_modules.regression import RegressionModule
from lightning_modules.regularizers import Regularization
from lightning_modules.schedulers import scheduler_factory

LOGGERS = ("tensorboard", "none")


def _plain(node: Any) -> Any:
    return OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node


def _without_name(node: DictConfig) -> dict:
    d = _plain(node)
    d.pop("name", None)
    return d


def build_datamodule(cfg: DictConfig) -> TensorDataModule:
    reg = cfg.regularization
    mix = MixConfig(mixup_alpha=reg.mixup_alpha, cutmix_alpha=reg.cutmix_alpha, mix_prob=reg.mix_prob, switch_prob=reg.switch_prob)
    return TensorDataModule(seed=cfg.seed, augment=reg.augment, mix=mix, **_plain(cfg.data))


def build_module(cfg: DictConfig, dm: TensorDataModule) -> SupervisedModule:
    reg = cfg.regularization
    net = build_net(cfg.model.name, dm.input_shape, dm.info.kind, dm.num_outputs, dropout=reg.dropout, batch_norm=reg.batch_norm, **_without_name(cfg.model))
    loss = build_loss(cfg.loss.name, dm.task, label_smoothing=reg.label_smoothing, delta=cfg.loss.delta)
    opt_hparams = _without_name(cfg.optimizer)
    if "weight_decay" in opt_hparams:
        raise ValueError("optimizer.weight_decay: not an optimizer key; set regularization.weight_decay (and regularization.decay_all)")
    optimizer = optimizer_factory(cfg.optimizer.name, weight_decay=reg.weight_decay, decay_all=reg.decay_all, **opt_hparams)
    scheduler = scheduler_factory(cfg.scheduler.name, **_without_name(cfg.scheduler))
    in_step = Regularization(l1=reg.l1, l2=reg.l2, decay_all=reg.decay_all, input_noise=reg.input_noise, weight_noise=reg.weight_noise)
    if dm.task == "classification":
        return ClassificationModule(net, loss, optimizer, scheduler, in_step, num_classes=dm.num_outputs)
    return RegressionModule(net, loss, optimizer, scheduler, in_step)


def build_callbacks(cfg: DictConfig, run_dir: Path, has_val: bool) -> tuple[list[Callback], bool]:
    ck = cfg.callbacks.checkpoint
    history = History(run_dir / "history.csv")
    callbacks: list[Callback] = [
        ModelCheckpoint(
            dirpath=run_dir / "checkpoints",
            filename="best-epoch{epoch:03d}",
            auto_insert_metric_name=False,
            monitor=ck.monitor if has_val else None,
            mode=ck.mode,
            save_last=True,
            save_top_k=1,
        ),
        history,
        Preemption(run_dir / "checkpoints" / "last.ckpt"),
    ]
    if cfg.callbacks.stop_at_train_acc is not None:  # "trained to the same training accuracy"
        callbacks.append(EarlyStopping(monitor="train/acc", mode="max", stopping_threshold=cfg.callbacks.stop_at_train_acc,
                                       patience=10**9, check_on_train_epoch_end=True))
    sharp = cfg.callbacks.sharpness
    if sharp.enabled:
        callbacks.append(SharpnessProbe(sharp.eps, sharp.lbfgs_iters, sharp.ascent_steps, sharp.hessian_iters, sharp.max_samples))
    if cfg.callbacks.figures:
        callbacks.append(RunFigures(run_dir / "figures", history, cfg.callbacks.histograms_every))
    patience = cfg.regularization.early_stopping
    if patience is not None:
        callbacks.append(EarlyStopping(monitor="val/loss", mode="min", patience=patience))
    progress, enable_bar = progress_callbacks(cfg.callbacks.progress)
    return callbacks + progress, enable_bar


def build_logger(cfg: DictConfig, run_dir: Path) -> Optional[Logger]:
    if cfg.logger.name not in LOGGERS:
        raise ValueError(f"logger.name={cfg.logger.name!r}: unknown; valid: {', '.join(LOGGERS)}")
    if cfg.logger.name == "none":
        return None
    return TensorBoardLogger(save_dir=str(run_dir), name="tensorboard", version="", default_hp_metric=False)


def build_trainer(cfg: DictConfig, run_dir: Path, has_val: bool) -> pl.Trainer:
    callbacks, enable_bar = build_callbacks(cfg, run_dir, has_val)
    logger = build_logger(cfg, run_dir)
    extra: dict[str, Any] = {} if has_val else {"limit_val_batches": 0, "num_sanity_val_steps": 0}
    return pl.Trainer(
        **_plain(cfg.trainer),
        default_root_dir=str(run_dir),
        logger=logger if logger is not None else False,
        callbacks=callbacks,
        enable_progress_bar=enable_bar,
        enable_model_summary=False,  # run.py prints the parameter count in one line instead
        gradient_clip_val=cfg.regularization.grad_clip,
        plugins=[AtomicCheckpointIO()],
        **extra,
    )
