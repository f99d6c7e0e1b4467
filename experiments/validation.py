"""Config checks run before anything is built or trained.

Each rule names a config key and what it accepts; a violation raises ``ConfigError`` with one
line: ``optimizer.lr=-1: must be a number > 0``. Keys absent from the composed config are
skipped, so a rule can name keys that only some options of a group have.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Callable, Optional

from omegaconf import DictConfig, OmegaConf

from core.errors import ConfigError


def _is_number(v: Any) -> bool:
    """A finite real number (nan and inf are refused: a rule's range cannot hold them)."""
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v)


def _is_int(v: Any) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def number(
    lo: Optional[float] = None, hi: Optional[float] = None, lo_open=False, hi_open=False, optional=False, integer=False
) -> Callable[[Any], Optional[str]]:
    """A check for a number in a range; returns what is accepted when the value fails it."""
    lb = "" if lo is None else (f"> {lo}" if lo_open else f">= {lo}")
    ub = "" if hi is None else (f"< {hi}" if hi_open else f"<= {hi}")
    if lo is not None and hi is not None:
        rng = f"in {'(' if lo_open else '['}{lo}, {hi}{')' if hi_open else ']'}"
    else:
        rng = lb or ub
    accepted = f"{'an integer' if integer else 'a number'}{' ' + rng if rng else ''}{' or null' if optional else ''}"

    def check(v: Any) -> Optional[str]:
        if v is None:
            return None if optional else accepted
        if not (_is_int(v) if integer else _is_number(v)):
            return accepted
        if lo is not None and (v <= lo if lo_open else v < lo):
            return accepted
        if hi is not None and (v >= hi if hi_open else v > hi):
            return accepted
        return None

    return check


def one_of(*choices: Any) -> Callable[[Any], Optional[str]]:
    return lambda v: None if v in choices else f"one of {', '.join(map(str, choices))}"


def boolean(v: Any) -> Optional[str]:
    return None if isinstance(v, bool) else "true or false"


def optional_boolean(v: Any) -> Optional[str]:
    return None if v is None or isinstance(v, bool) else "true, false or null"


fraction = number(0, 1, hi_open=True)
PRECISIONS = (
    "32-true",
    "16-mixed",
    "bf16-mixed",
    "16-true",
    "bf16-true",
    "64-true",
    "transformer-engine",
    "transformer-engine-float16",
    "64",
    "32",
    "16",
    "bf16",
)  # Lightning's (lightning_fabric/plugins/precision/precision.py)

RULES: dict[str, Callable[[Any], Optional[str]]] = {
    "seed": number(0, integer=True),
    "test_ckpt": one_of("best", "last"),
    "run_test": boolean,
    "optimizer.lr": number(0, lo_open=True),
    "optimizer.momentum": number(0, 1, hi_open=True),
    "optimizer.eps": number(0, lo_open=True),
    "optimizer.rho": number(0, lo_open=True),
    "optimizer.adaptive": boolean,
    "optimizer.nesterov": boolean,
    "scheduler.min_lr_ratio": number(0, 1),
    "scheduler.step_size": number(1, integer=True),
    "scheduler.gamma": number(0, 1, lo_open=True),
    "scheduler.pct_start": number(0, 1, hi_open=True),
    "scheduler.warmup_fraction": number(0, 1, hi_open=True),
    "scheduler.factor": number(0, 1, lo_open=True, hi_open=True),
    "scheduler.patience": number(0, integer=True),
    "data.batch_size": number(1, integer=True),
    "data.eval_batch_size": number(1, integer=True),
    "data.val_fraction": fraction,
    "data.test_fraction": fraction,
    "data.normalize": one_of("zscore", "minmax", "none"),
    "data.normalize_per": one_of("auto", "feature", "channel"),
    "data.split_seed": number(0, integer=True),
    "data.kfold.k": number(2, integer=True, optional=True),
    "data.kfold.index": number(0, integer=True),
    "data.bootstrap": number(0, integer=True, optional=True),
    "data.loader": one_of("auto", "device", "dataloader"),
    "data.num_workers": number(0, integer=True),
    "data.device_limit_mb": number(0),
    "trainer.max_epochs": number(1, integer=True),
    "trainer.devices": lambda v: (
        None if (_is_int(v) and v >= 1) or v == "auto" or isinstance(v, (list, str)) else "an integer >= 1, a list of ids or auto"
    ),
    "trainer.num_nodes": number(1, integer=True),
    # Lightning's documented precision values (lightning_fabric/plugins/precision/precision.py)
    "trainer.precision": lambda v: None if str(v) in PRECISIONS else f"one of {', '.join(PRECISIONS)}",
    "trainer.log_every_n_steps": number(1, integer=True),
    "trainer.compile": lambda v: None if isinstance(v, bool) else "true or false",
    "trainer.deterministic": lambda v: None if isinstance(v, bool) or v == "warn" else "true, false or warn",
    "regularization.weight_decay": number(0),
    "regularization.decay_all": boolean,
    "regularization.l1": number(0),
    "regularization.l2": number(0),
    "regularization.input_noise": number(0),
    "regularization.weight_noise": number(0),
    "regularization.augment": boolean,
    "regularization.mixup_alpha": number(0),
    "regularization.cutmix_alpha": number(0),
    "regularization.mix_prob": number(0, 1),
    "regularization.switch_prob": number(0, 1),
    "regularization.dropout": fraction,
    "regularization.batch_norm": optional_boolean,
    "regularization.label_smoothing": fraction,
    "regularization.grad_clip": number(0, lo_open=True, optional=True),
    "regularization.early_stopping": number(1, integer=True, optional=True),
    "callbacks.checkpoint.mode": one_of("min", "max"),
    "callbacks.figures": boolean,
    "callbacks.stop_at_train_acc": number(0, 1, lo_open=True, optional=True),
    "callbacks.sharpness.enabled": boolean,
    "callbacks.sharpness.eps": number(0, lo_open=True),
    "callbacks.sharpness.lbfgs_iters": number(1, integer=True),
    "callbacks.sharpness.ascent_steps": number(1, integer=True),
    "callbacks.sharpness.hessian_iters": number(1, integer=True),
    "callbacks.sharpness.max_samples": number(1, integer=True),
    "callbacks.histograms_every": number(1, integer=True, optional=True),
    "callbacks.samples_every": number(1, integer=True, optional=True),
    "loss.delta": number(0, lo_open=True),
}


def _fmt(v: Any) -> str:
    return "null" if v is None else (repr(v) if isinstance(v, str) else str(v))


def check_config(cfg: DictConfig) -> None:
    """Raise ``ConfigError`` for the first key whose value breaks its rule."""
    for key, rule in RULES.items():
        node = OmegaConf.select(cfg, key, default="__absent__", throw_on_missing=False)
        if isinstance(node, str) and node == "__absent__":
            continue
        value = OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node
        accepted = rule(value)
        if accepted is not None:
            raise ConfigError(f"{key}={_fmt(value)}: must be {accepted}")
    k, index = cfg.data.kfold.k, cfg.data.kfold.index
    if k is not None and index >= k:
        raise ConfigError(f"data.kfold.index={index}: must be < data.kfold.k={k}")
    vf, tf = cfg.data.get("val_fraction", 0), cfg.data.get("test_fraction", 0)
    if vf + tf >= 1:
        raise ConfigError(f"data.val_fraction + data.test_fraction = {vf} + {tf}: must be < 1 to leave a training split")
    if vf == 0 and k is None and cfg.get("test_ckpt") == "best":
        raise ConfigError("test_ckpt='best' needs a validation split: data.val_fraction=0; set test_ckpt=last or data.val_fraction>0")
    if vf == 0 and k is None and cfg.scheduler.name == "plateau":
        raise ConfigError("scheduler=plateau monitors val/loss, which needs a validation split: data.val_fraction=0")
    if vf == 0 and k is None and cfg.regularization.get("early_stopping") is not None:
        raise ConfigError("regularization.early_stopping needs a validation split: data.val_fraction=0")
