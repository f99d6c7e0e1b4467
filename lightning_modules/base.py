"""The small base shared by the supervised LightningModules.

It receives a plain network, a loss module and optimizer/scheduler factories (finished in
``configure_optimizers``), runs the train/val/test steps, logs ``<stage>/loss`` and the
subclass's metrics (one torchmetrics object per stage), the learning rate (``train/lr``) and the
best validation value of the subclass's headline metric (``val/<metric>_best``).
"""
from __future__ import annotations

from typing import Callable, Optional

import pytorch_lightning as pl
import torch
from torch import nn
from torchmetrics import MaxMetric, MetricCollection, MinMetric

from lightning_modules.optimizers import OptimizerFactory
from lightning_modules.schedulers import SchedulerFactory

STAGES = ("train", "val", "test")


class SupervisedModule(pl.LightningModule):
    #: the metric (a key of ``make_metrics``) whose best validation value is tracked, and its mode
    headline: tuple[str, str]

    def __init__(
        self,
        net: nn.Module,
        loss: nn.Module,
        optimizer: OptimizerFactory,
        scheduler: Optional[SchedulerFactory] = None,
    ):
        super().__init__()
        self.net = net
        self.loss_fn = loss
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler

    def add_stage_metrics(self, make_metrics: Callable[[], dict]) -> None:
        """Called by subclasses: ``make_metrics()`` gives name → torchmetrics Metric; one set per
        stage, so that a stage's state never leaks into another's."""
        for stage in STAGES:
            setattr(self, f"{stage}_metrics", MetricCollection(make_metrics()))
        name, mode = self.headline
        assert name in self.val_metrics, f"headline metric {name!r} not in {list(self.val_metrics)}"
        self.best_val = MaxMetric() if mode == "max" else MinMetric()

    def predictions(self, output: torch.Tensor) -> torch.Tensor:
        """What the metrics compare with the targets. Subclasses override."""
        return output

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def _step(self, batch, stage: str) -> torch.Tensor:
        x, y = batch  # (B, *input_shape), (B,) or (B, k)
        out = self(x)
        loss = self.loss_fn(out, y)
        n = y.shape[0]
        self.log(f"{stage}/loss", loss, on_step=False, on_epoch=True, prog_bar=stage == "val", batch_size=n)
        metrics = getattr(self, f"{stage}_metrics")
        metrics.update(self.predictions(out.detach()), y)
        for name, metric in metrics.items():
            self.log(f"{stage}/{name}", metric, on_step=False, on_epoch=True, prog_bar=stage != "train", batch_size=n)
        return loss

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        self.log("train/lr", self.trainer.optimizers[0].param_groups[0]["lr"], on_step=True, on_epoch=False)
        return self._step(batch, "train")

    def validation_step(self, batch, batch_idx: int) -> None:
        self._step(batch, "val")

    def test_step(self, batch, batch_idx: int) -> None:
        self._step(batch, "test")

    def on_train_start(self) -> None:
        self.best_val.reset()  # forget the sanity check's values

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking:
            return
        name, _ = self.headline
        self.best_val.update(self.val_metrics[name].compute())
        self.log(f"val/{name}_best", self.best_val.compute(), prog_bar=True)

    def configure_optimizers(self):
        optimizer = self.optimizer_factory(self.parameters())
        if self.scheduler_factory is None:
            return optimizer
        scheduler = self.scheduler_factory(optimizer, int(self.trainer.estimated_stepping_batches))
        if scheduler is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": scheduler}
