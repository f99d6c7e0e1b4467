"""Regression: outputs (B, k) against float targets (B, k); MSE and MAE per stage."""

from __future__ import annotations

import torch
from torchmetrics import MeanAbsoluteError, MeanSquaredError

from lightning_modules.base import SupervisedModule


class RegressionModule(SupervisedModule):
    headline = ("mse", "min")
    train_metric_names = ("mse", "mae")

    def train_sums(self, out: torch.Tensor, target: torch.Tensor, lead: int = 0) -> tuple[torch.Tensor, int]:
        err = (out - target).flatten(lead)  # over every output, as torchmetrics (per leading index)
        return torch.stack([err.pow(2).sum(-1), err.abs().sum(-1)], -1), err.shape[-1]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.add_stage_metrics(lambda: {"mse": MeanSquaredError(), "mae": MeanAbsoluteError()})
