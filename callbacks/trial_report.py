"""Reports a per-epoch validation metric to a hyperparameter-search trial and stops training when
the trial's pruner says so (``experiments/search.py`` makes one for an Optuna search with a pruner)."""

from __future__ import annotations

import math

import pytorch_lightning as pl


class TrialReport(pl.Callback):
    """``trial`` has ``report(value, step)`` and ``should_prune()`` (an Optuna trial); ``monitor`` is a
    metric logged each validation epoch. Rank 0 asks the trial; every rank stops together."""

    def __init__(self, trial, monitor: str):
        self.trial, self.monitor, self.pruned_at = trial, monitor, None

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        prune = False
        if trainer.is_global_zero:
            value = trainer.callback_metrics.get(self.monitor)
            if value is not None and math.isfinite(float(value)):
                self.trial.report(float(value), step=trainer.current_epoch)
                prune = self.trial.should_prune()
        if trainer.strategy.broadcast(prune):
            self.pruned_at = trainer.current_epoch
            trainer.should_stop = True
