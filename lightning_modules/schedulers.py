"""Scheduler registry: a config name → ``(optimizer, total_steps) -> Lightning lr_scheduler dict | None``.

Each entry says whether it steps per optimizer step or per epoch (``interval``), so that the
LightningModule hands Lightning the right configuration; ``none`` keeps the learning rate fixed.
"""
from __future__ import annotations

from typing import Any, Callable, Optional

import torch

from lightning_modules.registry import Registry

SCHEDULERS = Registry("scheduler")

SchedulerFactory = Callable[[torch.optim.Optimizer, int], Optional[dict]]


@SCHEDULERS.register("none", accepts=())
def none(optimizer: torch.optim.Optimizer, total_steps: int) -> None:
    return None


@SCHEDULERS.register("cosine", accepts=("min_lr_ratio",))
def cosine(optimizer: torch.optim.Optimizer, total_steps: int, min_lr_ratio: float = 0.0) -> dict:
    """Cosine decay from the base lr to ``min_lr_ratio × lr`` over the whole run, per step."""
    if not 0.0 <= min_lr_ratio <= 1.0:
        raise ValueError(f"scheduler.min_lr_ratio={min_lr_ratio}: must be in [0, 1]")
    base = optimizer.param_groups[0]["lr"]
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, total_steps), eta_min=base * min_lr_ratio)
    return {"scheduler": sched, "interval": "step", "frequency": 1}


def scheduler_factory(name: str, **hparams: Any) -> SchedulerFactory:
    """``(optimizer, total_steps) -> Lightning scheduler dict | None`` with ``hparams`` bound."""
    return SCHEDULERS.partial(name, **hparams)
