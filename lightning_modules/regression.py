"""Regression: outputs (B, k) against float targets (B, k); MSE and MAE per stage."""

from __future__ import annotations

import torch
from torchmetrics import MeanAbsoluteError, MeanSquaredError

from lightning_modules.base import SupervisedModule


class RegressionModule(SupervisedModule):
    headline = ("mse", "min")
    train_metric_names = ("mse", "mae")

    def train_sums(self, out: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, int]:
        err = out - target
        return torch.stack([err.pow(2).sum(), err.abs().sum()]), err.numel()  # over every output, as torchmetrics

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.add_stage_metrics(lambda: {"mse": MeanSquaredError(), "mae": MeanAbsoluteError()})
