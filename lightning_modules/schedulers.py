"""Scheduler registry: a config name → ``(optimizer, total_steps) -> Lightning lr_scheduler dict | None``.

Each entry steps per optimizer step or per epoch as it needs (``interval`` in the dict it
returns); ``plateau`` monitors ``val/loss``; ``none`` keeps the learning rate fixed. The learning
rate is logged as ``train/lr`` by the module.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Optional

import torch
from torch.optim import lr_scheduler as sched

from core.registry import Registry
from lightning_modules.rules import SCHEDULER

SCHEDULERS = Registry("scheduler", rules=SCHEDULER)

SchedulerFactory = Callable[[torch.optim.Optimizer, int], Optional[dict]]


def _per_step(scheduler: Any) -> dict:
    return {"scheduler": scheduler, "interval": "step", "frequency": 1}


@SCHEDULERS.register("none", accepts=())
def none(optimizer: torch.optim.Optimizer, total_steps: int) -> None:
    return None


@SCHEDULERS.register("step", accepts=("step_size", "gamma"))
def step(optimizer: torch.optim.Optimizer, total_steps: int, step_size: int = 10, gamma: float = 0.1) -> dict:
    """Multiply the lr by ``gamma`` every ``step_size`` epochs."""
    return {"scheduler": sched.StepLR(optimizer, step_size=step_size, gamma=gamma), "interval": "epoch", "frequency": 1}


@SCHEDULERS.register("cosine", accepts=("min_lr_ratio",))
def cosine(optimizer: torch.optim.Optimizer, total_steps: int, min_lr_ratio: float = 0.0) -> dict:
    """Cosine decay from the base lr to ``min_lr_ratio × lr`` over the whole run, per step."""
    base = optimizer.param_groups[0]["lr"]
    return _per_step(sched.CosineAnnealingLR(optimizer, T_max=max(1, total_steps), eta_min=base * min_lr_ratio))


@SCHEDULERS.register("onecycle", accepts=("pct_start", "div_factor", "final_div_factor"))
def onecycle(
    optimizer: torch.optim.Optimizer, total_steps: int, pct_start: float = 0.3, div_factor: float = 25.0, final_div_factor: float = 1e4
) -> dict:
    """Smith's one-cycle policy, peaking at optimizer.lr after ``pct_start`` of the run."""
    max_lr = [g["lr"] for g in optimizer.param_groups]
    return _per_step(
        sched.OneCycleLR(
            optimizer,
            max_lr=max_lr,
            total_steps=max(2, total_steps),
            pct_start=pct_start,
            div_factor=div_factor,
            final_div_factor=final_div_factor,
        )
    )


@SCHEDULERS.register("warmup_cosine", accepts=("warmup_fraction", "min_lr_ratio"))
def warmup_cosine(optimizer: torch.optim.Optimizer, total_steps: int, warmup_fraction: float = 0.05, min_lr_ratio: float = 0.0) -> dict:
    """Linear warmup from ~0 to optimizer.lr over ``warmup_fraction`` of the steps, then cosine."""
    warmup = int(round(warmup_fraction * total_steps))
    decay = max(1, total_steps - warmup)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / decay)
        return min_lr_ratio + (1 - min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return _per_step(sched.LambdaLR(optimizer, factor))


@SCHEDULERS.register("plateau", accepts=("factor", "patience", "min_lr"), monitors="val/loss")
def plateau(optimizer: torch.optim.Optimizer, total_steps: int, factor: float = 0.1, patience: int = 5, min_lr: float = 0.0) -> dict:
    """Multiply the lr by ``factor`` after ``patience`` epochs without a lower val/loss."""
    return {
        "scheduler": sched.ReduceLROnPlateau(optimizer, mode="min", factor=factor, patience=patience, min_lr=min_lr),
        "interval": "epoch",
        "frequency": 1,
        "monitor": "val/loss",
    }


def scheduler_factory(name: str, **hparams: Any) -> SchedulerFactory:
    """``(optimizer, total_steps) -> Lightning scheduler dict | None`` with ``hparams`` bound and
    checked (the entry's ``accepts``, then ``lightning_modules/rules.py``)."""
    return SCHEDULERS.partial(name, **hparams)
