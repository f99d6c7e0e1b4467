"""Regression: outputs (B, k) against float targets (B, k); MSE and MAE per stage."""
from __future__ import annotations

from torchmetrics import MeanAbsoluteError, MeanSquaredError

from lightning_modules.base import SupervisedModule


class RegressionModule(SupervisedModule):
    headline = ("mse", "min")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.add_stage_metrics(lambda: {"mse": MeanSquaredError(), "mae": MeanAbsoluteError()})
