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

from lightning_modules.capabilities import Supports
from lightning_modules.compat import logger_writes_this_step
from lightning_modules.optimizers import OptimizerFactory, is_perturbed
from lightning_modules.regularizers import Regularization, forward_with_weight_noise, norm_penalty, with_input_noise
from lightning_modules.schedulers import SchedulerFactory

STAGES = ("train", "val", "test")


class NonFiniteLoss(RuntimeError):
    """The training loss became NaN or infinite; training stops at that step."""

    def __init__(self, step: int, epoch: int, value: float):
        super().__init__(f"train/loss is {value} at step {step} (epoch {epoch + 1})")
        self.step, self.epoch, self.value = step, epoch, value


class SupervisedModule(pl.LightningModule):
    #: the metric (a key of ``make_metrics``) whose best validation value is tracked, and its mode
    headline: tuple[str, str]
    supports = Supports()  # every regularizer, any optimizer, Lightning's loop

    def __init__(
        self,
        net: Optional[nn.Module] = None,
        loss: Optional[nn.Module] = None,
        optimizer: Optional[OptimizerFactory] = None,
        scheduler: Optional[SchedulerFactory] = None,
        regularization: Regularization = Regularization(),
        rebuild: Optional[dict] = None,
    ):
        """The parts as objects, or ``rebuild``: their plain spec (``lightning_modules/rebuild.py``),
        which the checkpoint then carries, so ``load_from_checkpoint(path)`` needs nothing else."""
        super().__init__()
        if rebuild is not None:
            if net is not None:
                raise TypeError("give the parts (net, loss, optimizer, ...) or rebuild=<spec>, not both")
            from lightning_modules import rebuild as parts

            net, loss, optimizer, scheduler, regularization = parts.supervised(rebuild).values()
            # the init arguments of the whole class chain (rebuild, num_classes); TensorBoard gets the run's own HParams
            self.save_hyperparameters(ignore=["net", "loss", "optimizer", "scheduler", "regularization"], logger=False)
            # two samples of the input's shape: Lightning's model summary shows each layer's in and out sizes
            self.example_input_array = torch.zeros(2, *rebuild["net"]["input_shape"])
        elif net is None or loss is None or optimizer is None:
            raise TypeError("needs net, loss and optimizer, or rebuild=<spec>")
        self.net = net
        self.loss_fn = loss
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.reg = regularization
        self._train_sums, self._train_counts = None, (0, 0)

    def add_stage_metrics(self, make_metrics: Callable[[], dict]) -> None:
        """Called by subclasses: ``make_metrics()`` gives name → torchmetrics Metric; one set per
        stage, so that a stage's state never leaks into another's."""
        for stage in STAGES:
            setattr(self, f"{stage}_metrics", MetricCollection(make_metrics()))
        name, mode = self.headline
        assert name in self.val_metrics, f"headline metric {name!r} not in {list(self.val_metrics)}"
        self.best_val = MaxMetric() if mode == "max" else MinMetric()

    def logged_metrics(self) -> set[str]:
        """The epoch metrics a run logs (what callbacks.checkpoint.monitor may name)."""
        penalty = ["penalty"] if self.reg.l1 or self.reg.l2 else []
        return (
            {"val/loss", f"val/{self.headline[0]}_best", "train/loss"}
            | {f"val/{m}" for m in self.val_metrics}
            | {f"train/{m}" for m in [*self.train_metric_names, *penalty]}
        )

    def predictions(self, output: torch.Tensor) -> torch.Tensor:
        """What the metrics compare with the targets. Subclasses override."""
        return output

    def metric_targets(self, y: torch.Tensor) -> torch.Tensor:
        """The targets the metrics see (e.g. hard labels for soft Mixup targets). Subclasses override."""
        return y

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def train_sums(self, out: torch.Tensor, target: torch.Tensor, lead: int = 0) -> tuple[torch.Tensor, int]:
        """The training metrics of one batch as sums, in ``train_metric_names`` order, and what
        they are divided by at the end of the epoch; with ``lead`` leading axes (K members: 1), one
        row of sums per leading index. Subclasses override."""
        raise NotImplementedError

    def _accumulate_train(self, out: torch.Tensor, y: torch.Tensor, loss: torch.Tensor, penalty, batch_idx: int) -> None:
        """Training loss and metrics as running sums on the device (a few tensor ops a step, no
        logging calls and no host syncs), logged once, at the epoch's last batch."""
        n = y.shape[0]
        sums, m = self.train_sums(out.detach(), self.metric_targets(y))
        parts = [loss.detach().reshape(1) * n, sums.float()]
        if penalty is not None:
            parts.append(penalty.detach().reshape(1) * n)
        step = torch.cat(parts)
        self._train_sums = step if self._train_sums is None else self._train_sums + step
        self._train_counts = (self._train_counts[0] + n, self._train_counts[1] + m)
        if batch_idx + 1 == self.trainer.num_training_batches:
            n_all, m_all = self._train_counts
            means = self._train_sums / torch.tensor(
                [n_all, *[m_all] * len(self.train_metric_names), *[n_all] * (penalty is not None)], device=step.device, dtype=step.dtype
            )
            names = ["loss", *self.train_metric_names, *(["penalty"] if penalty is not None else [])]
            for name, value in zip(names, means):  # sync_dist: the mean over DDP ranks (equal shards), at the epoch's end
                self.log(f"train/{name}", value, on_step=False, on_epoch=True, sync_dist=True)

    def on_train_epoch_start(self) -> None:
        self._train_sums, self._train_counts = None, (0, 0)

    def _log_step(self, stage: str, out: torch.Tensor, y: torch.Tensor, loss: torch.Tensor) -> None:
        n = y.shape[0]
        # sync_dist: averaged over every DDP rank's shard, once per epoch (a no-op in one process)
        self.log(f"{stage}/loss", loss, on_step=False, on_epoch=True, prog_bar=stage == "val", batch_size=n, sync_dist=True)
        metrics = getattr(self, f"{stage}_metrics")
        metrics.update(self.predictions(out.detach()), self.metric_targets(y))
        for name, metric in metrics.items():
            self.log(f"{stage}/{name}", metric, on_step=False, on_epoch=True, prog_bar=stage != "train", batch_size=n)

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        x, y = batch  # (B, *input_shape), (B,) or (B, k)
        x = with_input_noise(x, self.reg.input_noise)
        out = forward_with_weight_noise(self.net, x, self.reg.weight_noise) if self.reg.weight_noise else self(x)
        loss = self.loss_fn(out, y)
        total = loss
        if self.reg.l1 or self.reg.l2:
            penalty = norm_penalty(self.net, self.reg.l1, self.reg.l2, self.reg.decay_all)
            total = loss + penalty
        if not torch.isfinite(total):  # one host sync per step: cheap next to losing the run to NaN weights
            raise NonFiniteLoss(self.global_step, self.current_epoch, float(total.detach()))
        optimizer = self.trainer.optimizers[0]
        if not is_perturbed(optimizer):  # SAM's second pass (at w + e) is not what we report
            self._accumulate_train(out, y, loss, penalty if total is not loss else None, batch_idx)
            if logger_writes_this_step(self.trainer):  # only the steps the logger writes
                self.log("train/lr", optimizer.param_groups[0]["lr"], on_step=True, on_epoch=False)
        return total

    def _eval_step(self, batch, stage: str) -> None:
        x, y = batch
        out = self(x)
        self._log_step(stage, out, y, self.loss_fn(out, y))

    def validation_step(self, batch, batch_idx: int) -> None:
        self._eval_step(batch, "val")

    def test_step(self, batch, batch_idx: int) -> None:
        self._eval_step(batch, "test")

    def on_train_start(self) -> None:
        self.best_val.reset()  # forget the sanity check's values

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking:
            return
        name, _ = self.headline
        self.best_val.update(self.val_metrics[name].compute())
        self.log(f"val/{name}_best", self.best_val.compute(), prog_bar=True, sync_dist=True)

    def configure_optimizers(self):
        return with_scheduler(self.optimizer_factory(self.net), self.scheduler_factory, self.trainer)


def with_scheduler(optimizer: torch.optim.Optimizer, scheduler_factory: Optional[SchedulerFactory], trainer: pl.Trainer):
    """What ``configure_optimizers`` returns: the optimizer, with its scheduler when there is one."""
    scheduler = None if scheduler_factory is None else scheduler_factory(optimizer, int(trainer.estimated_stepping_batches))
    return optimizer if scheduler is None else {"optimizer": optimizer, "lr_scheduler": scheduler}
