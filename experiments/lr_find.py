"""``tune.lr_find=true``: Lightning's learning-rate range test (Smith 2017) before fitting.

The test trains a copy of the run's module for ``tune.num_training`` steps while the learning rate
grows from ``tune.min_lr`` to ``tune.max_lr``, and suggests the lr where the smoothed training loss
falls fastest (Lightning's ``Tuner.lr_find``; its choice, not ours). It runs on a Trainer of its own
(no logger, no checkpoints, none of the run's callbacks), so nothing of it lands in the run but the
figure and the suggestion; the run then starts from freshly built weights and data, seeded as
always, so a run with ``tune.apply=false`` trains exactly as it would without the test, and one with
``tune.apply=true`` exactly as ``optimizer.lr=<suggestion>`` would. The suggestion comes from
training losses only (Lightning's finder also runs its validation loop, whose values nothing
reads); the test split is never touched.
"""

from __future__ import annotations

import contextlib
import io
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from core.errors import ConfigError
from core.rules import Rule, boolean, fmt, number, one_of

#: the ``tune.*`` keys (experiments/configs/train.yaml)
RULES: dict[str, Rule] = {
    "lr_find": boolean,
    "apply": boolean,
    "min_lr": number(0, lo_open=True),
    "max_lr": number(0, lo_open=True),
    "num_training": number(20, integer=True),  # the suggestion skips the first 10 points and needs a slope after them
    "mode": one_of("exponential", "linear"),
    "early_stop_threshold": number(1, lo_open=True, optional=True),
}


def check_tune(cfg: DictConfig) -> None:
    """What ``tune.*`` cannot ask for, given the rest of the config (the keys' own rules are in ``RULES``)."""
    tune = cfg.get("tune")
    if tune is None:  # a run saved before the tune section existed (resume=)
        return
    if tune.apply and not tune.lr_find:
        raise ConfigError("tune.apply=true: applies the range test's suggestion; set tune.lr_find=true too")
    if not tune.lr_find:
        return
    if tune.max_lr <= tune.min_lr:
        raise ConfigError(f"tune.max_lr={tune.max_lr}: must be > tune.min_lr={tune.min_lr}")
    trainer = cfg.trainer
    from experiments.preflight import count_devices

    strategy, devices, nodes = str(trainer.get("strategy", "auto")), trainer.get("devices", 1), trainer.get("num_nodes", 1)
    if strategy.startswith(("ddp", "fsdp", "deepspeed")) or count_devices(devices) != 1 or nodes != 1:
        raise ConfigError(
            f"tune.lr_find=true with trainer.strategy={strategy} trainer.devices={devices} trainer.num_nodes={nodes}: the range "
            "test runs in one process; find the lr with trainer=cpu (or gpu), then train with optimizer.lr=<suggestion>"
        )


@dataclass
class RangeTest:
    lrs: list[float]
    losses: list[float]  # smoothed training loss at each lr (nan where the step gave none)
    suggestion: float
    lr_before: float  # optimizer.lr as configured

    def record(self) -> dict[str, Any]:
        """What metrics.json keeps of it."""
        return {"lr_find/suggestion": self.suggestion, "lr_find/steps": len(self.lrs), "lr_find/lr_before": self.lr_before}


def wanted(cfg: DictConfig) -> bool:
    return bool(cfg.get("tune") and cfg.tune.lr_find)


def range_test(cfg: DictConfig, dm, module) -> RangeTest:
    """Run the test on ``module`` (its weights are changed: build a fresh one to train)."""
    import pytorch_lightning as pl
    from pytorch_lightning.tuner import Tuner

    from callbacks.checkpoint_io import AtomicCheckpointIO
    from lightning_modules.base import NonFiniteLoss

    tune = cfg.tune
    with tempfile.TemporaryDirectory(prefix="dlf-lr-find-") as scratch:  # the test's own checkpoint, removed after
        trainer = pl.Trainer(
            accelerator=cfg.trainer.accelerator,
            devices=1,
            precision=cfg.trainer.precision,
            deterministic=cfg.trainer.get("deterministic", False),
            plugins=[AtomicCheckpointIO()],  # the checkpoint it saves and restores is read weights-only, as every other
            accumulate_grad_batches=cfg.trainer.get("accumulate_grad_batches", 1),
            gradient_clip_val=cfg.regularization.grad_clip,
            max_steps=tune.num_training,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            default_root_dir=scratch,
        )
        saving = logging.getLogger("pytorch_lightning.trainer.connectors.checkpoint_connector")
        level = saving.level
        saving.setLevel(logging.WARNING)  # its note on the scratch checkpoint it saves (read back weights-only, above)
        try:
            # Lightning's finder draws a tqdm bar of its own on stderr, whatever callbacks.progress says
            with contextlib.redirect_stderr(io.StringIO()):
                found = Tuner(trainer).lr_find(
                    module,
                    datamodule=dm,
                    min_lr=tune.min_lr,
                    max_lr=tune.max_lr,
                    num_training=tune.num_training,
                    mode=tune.mode,
                    early_stop_threshold=tune.early_stop_threshold,
                    update_attr=False,
                )
        except NonFiniteLoss as exc:
            raise ConfigError(
                f"tune.lr_find=true: {exc} during the range test; lower tune.max_lr={tune.max_lr} or set "
                f"tune.early_stop_threshold (now {fmt(tune.early_stop_threshold)}; 4.0 by default), which stops it as the loss diverges"
            ) from exc
        finally:
            saving.setLevel(level)
    lrs, losses = [float(v) for v in found.results["lr"]], [float(v) for v in found.results["loss"]]
    suggestion = found.suggestion()
    if suggestion is None:
        raise ConfigError(
            f"tune.lr_find=true: no suggestion from {len(lrs)} steps (the loss diverged or was not finite before the "
            f"12 the suggestion needs); lower tune.max_lr={tune.max_lr} or set tune.early_stop_threshold=null"
        )
    return RangeTest(lrs, losses, float(suggestion), float(cfg.optimizer.lr))


def draw(test: RangeTest, folder: Path, writer=None) -> list[Path]:
    """``figures/lr_find.pdf|png``: the smoothed loss against the lr (log axis), the suggestion marked."""
    import math

    from callbacks.plot_style import new_figure, palette, save_figure

    fig, axes = new_figure()
    ax = axes[0, 0]
    blue, orange, grey = palette(3)[0], palette(3)[1], "0.5"
    points = [(lr, loss) for lr, loss in zip(test.lrs, test.losses) if math.isfinite(loss)]
    ax.plot([p[0] for p in points], [p[1] for p in points], color=blue, lw=1.5)
    near = min(points, key=lambda p: abs(math.log(p[0] / test.suggestion)))
    ax.plot([near[0]], [near[1]], "o", color=orange, label=f"suggested {test.suggestion:.3g}")
    ax.axvline(test.lr_before, color=grey, ls="--", lw=1, label=f"configured {test.lr_before:.3g}")
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("training loss (smoothed)")
    ax.set_title("learning-rate range test")
    ax.legend()
    return save_figure(fig, folder, "lr_find", writer)
