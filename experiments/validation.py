"""Config checks run before anything is built or trained.

Each rule names a config key and what it accepts; a violation raises ``ConfigError`` with one
line: ``optimizer.lr=-1: must be a number > 0``. Keys absent from the composed config are
skipped, so a rule can name keys that only some options of a group have.
"""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf

from core.errors import ConfigError
from core.rules import Rule, boolean, check, is_int, number, one_of, under
from datamodules import rules as data_rules
from experiments import lr_find
from lightning_modules import rules as module_rules

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

#: every config key's rule: the components' own (defined once, beside the code that applies the
#: key, and applied there too), then the keys that belong to the run, the trainer and the callbacks
RULES: dict[str, Rule] = {
    "seed": number(0, integer=True),
    "test_ckpt": one_of("best", "last"),
    "run_test": boolean,
    **under("optimizer", module_rules.OPTIMIZER),
    **under("scheduler", module_rules.SCHEDULER),
    **under("data", data_rules.RULES),
    "trainer.max_epochs": number(1, integer=True),
    "trainer.devices": lambda v: (
        None if (is_int(v) and v >= 1) or v == "auto" or isinstance(v, (list, str)) else "an integer >= 1, a list of ids or auto"
    ),
    "trainer.num_nodes": number(1, integer=True),
    # Lightning's documented precision values (lightning_fabric/plugins/precision/precision.py)
    "trainer.precision": lambda v: None if str(v) in PRECISIONS else f"one of {', '.join(PRECISIONS)}",
    "trainer.log_every_n_steps": number(1, integer=True),
    "trainer.compile": boolean,
    # the Trainer arguments a user adds with +trainer.X whose bad values Lightning would only refuse mid-run
    "trainer.accumulate_grad_batches": number(1, integer=True),
    "trainer.num_sanity_val_steps": number(-1, integer=True),
    "trainer.val_check_interval": lambda v: (
        None
        if (is_int(v) and v >= 1) or (isinstance(v, float) and 0 < v <= 1)
        else "a fraction of an epoch in (0, 1] or a number of batches >= 1"
    ),
    "trainer.overfit_batches": lambda v: (
        None if (is_int(v) and v >= 0) or (isinstance(v, float) and 0 <= v <= 1) else "a fraction in [0, 1] or a number of batches >= 0"
    ),
    "trainer.fast_dev_run": lambda v: None if isinstance(v, bool) or (is_int(v) and v >= 0) else "true, false or a number of batches >= 0",
    "trainer.profiler": lambda v: None if v in (None, "simple", "advanced", "pytorch") else "null, simple, advanced or pytorch",
    "trainer.deterministic": lambda v: None if isinstance(v, bool) or v == "warn" else "true, false or warn",
    **under(
        "regularization",
        {
            **module_rules.REGULARIZATION,
            **data_rules.REGULARIZATION,
            "grad_clip": number(0, lo_open=True, optional=True),
            "early_stopping": number(1, integer=True, optional=True),
            "ema_decay": number(0, 1, lo_open=True, hi_open=True, optional=True),
            "swa_lr": number(0, lo_open=True, optional=True),
            "swa_start": number(1, integer=True, optional=True),
        },
    ),
    "callbacks.checkpoint.mode": one_of("min", "max"),
    "callbacks.figures": boolean,
    "callbacks.summary_depth": number(0, integer=True),
    "callbacks.stop_at_train_acc": number(0, 1, lo_open=True, optional=True),
    "callbacks.sharpness.enabled": boolean,
    "callbacks.sharpness.eps": number(0, lo_open=True),
    "callbacks.sharpness.lbfgs_iters": number(1, integer=True),
    "callbacks.sharpness.ascent_steps": number(1, integer=True),
    "callbacks.sharpness.hessian_iters": number(1, integer=True),
    "callbacks.sharpness.max_samples": number(1, integer=True),
    "callbacks.hessian.enabled": boolean,
    "callbacks.hessian.top_k": number(1, integer=True),
    "callbacks.hessian.lanczos_steps": number(2, integer=True),
    "callbacks.hessian.trace_samples": number(2, integer=True),
    "callbacks.hessian.density_runs": number(1, integer=True),
    "callbacks.hessian.density_steps": number(2, integer=True),
    "callbacks.hessian.max_samples": number(1, integer=True),
    "callbacks.landscape.enabled": boolean,
    "callbacks.landscape.points": lambda v: None if is_int(v) and v >= 3 and v % 2 else "an odd integer >= 3 (α = 0 is a point)",
    "callbacks.landscape.span": number(0, lo_open=True),
    "callbacks.landscape.plane": boolean,
    "callbacks.landscape.max_samples": number(1, integer=True),
    "callbacks.landscape.seed": number(0, integer=True),
    "callbacks.histograms_every": number(1, integer=True, optional=True),
    "callbacks.samples_every": number(1, integer=True, optional=True),
    **under("loss", module_rules.LOSS),
    **under("tune", lr_find.RULES),
}


def check_config(cfg: DictConfig) -> None:
    """Raise ``ConfigError`` for the first key whose value breaks its rule."""
    for key, rule in RULES.items():
        node = OmegaConf.select(cfg, key, default="__absent__", throw_on_missing=False)
        if isinstance(node, str) and node == "__absent__":
            continue
        check(key, OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node, rule)
    k, index = cfg.data.kfold.k, cfg.data.kfold.index
    vf, tf = data_rules.val_fraction_of(cfg.data.get("val_fraction"), k), cfg.data.get("test_fraction", 0)
    data_rules.check_splits(vf, tf, k, index)
    data_rules.check_loader(cfg.data.loader, cfg.data.num_workers)
    if vf == 0 and k is None and cfg.get("test_ckpt") == "best":
        raise ConfigError("test_ckpt='best' needs a validation split: data.val_fraction=0; set test_ckpt=last or data.val_fraction>0")
    if vf == 0 and k is None and cfg.scheduler.name == "plateau":
        raise ConfigError("scheduler=plateau monitors val/loss, which needs a validation split: data.val_fraction=0")
    if vf == 0 and k is None and cfg.regularization.get("early_stopping") is not None:
        raise ConfigError("regularization.early_stopping needs a validation split: data.val_fraction=0")
    check_averaging(cfg)
    hess = cfg.callbacks.get("hessian")
    if hess is not None and hess.enabled and hess.lanczos_steps < 2 * hess.top_k:
        raise ConfigError(
            f"callbacks.hessian.lanczos_steps={hess.lanczos_steps}: must be >= 2 × callbacks.hessian.top_k={hess.top_k} "
            "(the top Ritz values of fewer steps are not yet the top eigenvalues)"
        )


def check_averaging(cfg: DictConfig) -> None:
    """``regularization.ema_decay`` / ``swa_lr`` + ``swa_start``: one of them, complete, and what SWA needs."""
    reg = cfg.regularization
    ema, lr, start = reg.get("ema_decay"), reg.get("swa_lr"), reg.get("swa_start")
    if (lr is None) != (start is None):
        given, missing = ("swa_lr", "swa_start") if start is None else ("swa_start", "swa_lr")
        raise ConfigError(
            f"regularization.{given}={reg[given]}: needs regularization.{missing} too (SWA from epoch swa_start at lr swa_lr); "
            "give both or neither"
        )
    if lr is None:
        return
    if ema is not None:
        raise ConfigError(f"regularization.ema_decay={ema} with regularization.swa_lr={lr}: two averages of the same weights; choose one")
    epochs = cfg.trainer.get("max_epochs")
    if is_int(epochs) and epochs > 0 and start > epochs:
        raise ConfigError(f"regularization.swa_start={start}: beyond trainer.max_epochs={epochs}; SWA would never start")
    if cfg.scheduler.name != "none":
        raise ConfigError(
            f"regularization.swa_lr={lr} with scheduler={cfg.scheduler.name}: SWA holds the lr at swa_lr from swa_start on and "
            "would fight the schedule; use scheduler=none"
        )
    if cfg.get("test_ckpt") == "best":
        raise ConfigError(
            f"regularization.swa_lr={lr} with test_ckpt=best: the best checkpoint may be an iterate from before SWA started; "
            "test the average with test_ckpt=last"
        )
