"""Everything about a config that can be refused before any data is read or any weight is built.

``preflight(cfg)`` runs the rule table (``experiments/validation.py``) and the checks that need
more than one key or a look at the machine: the Trainer's arguments, the accelerator, the number
of processes, the run's name. A sweep calls it for every job before the first one starts; a run
calls it first thing. Each failure is a ``ConfigError`` with one line naming the key and the value.
"""

from __future__ import annotations

import inspect
from typing import Any

from omegaconf import DictConfig, OmegaConf

from core.errors import ConfigError
from core.rules import fmt
from datamodules.rules import val_fraction_of
from experiments.cluster import launch_problem
from experiments.loggers import check_loggers
from experiments.lr_find import check_tune
from experiments.seeds import check_seeds
from experiments.validation import check_config

# The Trainer arguments the template sets itself (experiments/build.py), with the key to use instead.
SET_BY_TEMPLATE = {
    "default_root_dir": "hydra.run.dir",
    "logger": "logger=",
    "callbacks": "callbacks.*",
    "enable_progress_bar": "callbacks.progress",
    "enable_model_summary": "callbacks.summary_depth (0 turns the summary off)",
    "gradient_clip_val": "regularization.grad_clip",
    "plugins": "(none: checkpoints are always written atomically and read weights-only)",
}
GPU_ACCELERATORS = ("gpu", "cuda")


def _trainer_arguments() -> list[str]:
    import pytorch_lightning as pl

    return [p for p in inspect.signature(pl.Trainer.__init__).parameters if p != "self"]


def count_devices(devices: Any) -> int | None:
    if isinstance(devices, int) and not isinstance(devices, bool):
        return devices
    if isinstance(devices, (list, tuple)) or OmegaConf.is_list(devices):
        return len(devices)
    if isinstance(devices, str) and devices.strip().lstrip("-").isdigit():
        return int(devices)
    return None  # "auto", -1 and device strings such as "0,1": Lightning decides


def check_trainer(trainer: DictConfig, local: bool = True) -> None:
    """``local``: the jobs run on this machine (a SLURM sweep's jobs are checked for GPUs where they run)."""
    accepted = _trainer_arguments()
    for key in trainer:
        if key == "compile":
            continue
        if key in SET_BY_TEMPLATE:
            raise ConfigError(f"trainer.{key}: set by the template; use {SET_BY_TEMPLATE[key]}")
        if key not in accepted:
            raise ConfigError(
                f"trainer.{key}={trainer[key]}: not an argument of pytorch_lightning.Trainer; "
                f"Trainer arguments: {', '.join(a for a in accepted if a not in SET_BY_TEMPLATE)}"
            )
    limit = trainer.get("limit_train_batches")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, (int, float)) or limit <= 0):
        raise ConfigError(
            f"trainer.limit_train_batches={limit}: must be > 0 (a fraction in (0, 1] or a number of batches >= 1); 0 would train nothing"
        )
    accelerator = str(trainer.get("accelerator", "auto"))
    if accelerator in GPU_ACCELERATORS and local:
        import torch

        if not torch.cuda.is_available():
            raise ConfigError(
                f"trainer.accelerator={accelerator}: no CUDA GPU is visible to torch {torch.__version__} on this "
                "machine; use trainer=cpu (or trainer=ddp_cpu for several processes)"
            )
    devices, strategy = count_devices(trainer.get("devices", 1)), str(trainer.get("strategy", "auto"))
    if devices is not None and devices > 1 and strategy == "auto":
        preset = "ddp_cpu" if accelerator == "cpu" else "ddp"
        raise ConfigError(
            f"trainer.devices={trainer.devices} with trainer.strategy=auto: several processes need a distributed "
            f"preset; use trainer={preset} trainer.devices={trainer.devices}"
        )


def check_name(name: Any) -> None:
    text = str(name)
    if not text or "/" in text or "\\" in text or text in (".", "..") or "\0" in text:
        raise ConfigError(
            f"name={text!r}: must be a plain directory name (no '/', '\\' or '..'); it names the run's directory under outputs/runs/"
        )


def check_validation(cfg: DictConfig) -> None:
    """test_ckpt=best needs a best checkpoint, so validation must run at least once."""
    if cfg.test_ckpt != "best" or not cfg.run_test:
        return
    trainer = cfg.trainer
    limit, every = trainer.get("limit_val_batches"), trainer.get("check_val_every_n_epoch", 1)
    if limit is not None and not isinstance(limit, bool) and limit == 0:
        raise ConfigError(
            f"trainer.limit_val_batches={limit} with test_ckpt=best: no validation, so no best checkpoint to test; set test_ckpt=last"
        )
    if isinstance(every, int) and every > trainer.max_epochs:
        raise ConfigError(
            f"trainer.check_val_every_n_epoch={every} > trainer.max_epochs={trainer.max_epochs} with test_ckpt=best: "
            "validation never runs; set test_ckpt=last or validate more often"
        )


def preflight(cfg: DictConfig, local: bool = True) -> None:
    """``local=False``: the run will start on another machine (a cluster launcher)."""
    check_config(cfg)
    cfg.data.val_fraction = val_fraction_of(cfg.data.val_fraction, cfg.data.kfold.k)  # null resolved: the saved config says which
    check_name(cfg.name)
    problem = launch_problem(cfg.trainer)
    if problem:
        raise ConfigError(problem)
    check_loggers(cfg.logger)
    study = cfg.get("study") or {}
    slurm = {k: v for k, v in (study.get("slurm") or {}).items() if v is not None}
    if study.get("name") == "none" and (
        study.get("launcher", "inline") != "inline" or study.get("workers") is not None or study.get("detach") or slurm
    ):
        given = f"study.launcher={study.get('launcher')} study.workers={fmt(study.get('workers'))} study.detach={fmt(study.get('detach'))}"
        raise ConfigError(
            f"{given}{''.join(f' study.slurm.{k}={fmt(v)}' for k, v in slurm.items())}: where a study's members train; "
            "a single run has none (add study=NAME)"
        )
    if study.get("name") == "none" and study.get("one_fit", True) is not True:
        raise ConfigError(
            f"study.one_fit={fmt(study.get('one_fit'))}: how a study trains its members' seeds; a single run has none (add study=NAME)"
        )
    check_trainer(cfg.trainer, local)
    check_tune(cfg)
    check_validation(cfg)
    check_seeds(cfg)


def check_val_interval(trainer: DictConfig, train_batches: int) -> None:
    """A ``trainer.val_check_interval`` in batches must fit in an epoch (Lightning refuses it only once fitting starts)."""
    every, limit = trainer.get("val_check_interval"), trainer.get("limit_train_batches")
    if isinstance(limit, int) and not isinstance(limit, bool):
        train_batches = min(train_batches, limit)
    elif isinstance(limit, float):
        train_batches = int(train_batches * limit)
    if (
        isinstance(every, int)
        and not isinstance(every, bool)
        and every > train_batches
        and trainer.get("check_val_every_n_epoch", 1) is not None
    ):
        raise ConfigError(
            f"trainer.val_check_interval={every}: more batches than an epoch has ({train_batches}); use a fraction such as 0.5, "
            "or add +trainer.check_val_every_n_epoch=null to count batches across epochs"
        )
