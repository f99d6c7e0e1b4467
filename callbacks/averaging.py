"""Weight averaging by name, through Lightning's own callbacks: ``regularization.ema_decay`` (an
exponential moving average of the weights after every optimizer step, ``EMAWeightAveraging``) and
``regularization.swa_lr`` / ``swa_start`` (stochastic weight averaging, Izmailov et al. 2018: from
epoch ``swa_start`` on the lr is held at ``swa_lr`` and the weights at the end of each epoch are
averaged equally; a ``WeightAveraging`` whose ``should_update`` picks those epochs, as Lightning's
documentation shows). Lightning validates and checkpoints the averaged weights, and the run tests
them; ``RefreshBatchNorm`` recomputes the batch-norm statistics of the averaged weights on the
training data wherever they are used (validation, every checkpoint, the end of training), since
statistics gathered along the iterates do not belong to their average."""

from __future__ import annotations

import copy
from typing import Any, Optional

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback, EMAWeightAveraging, WeightAveraging
from pytorch_lightning.trainer.states import TrainerFn
from torch import nn
from torch.optim.swa_utils import update_bn


class TestsTheAverage:
    """Two mendings of Lightning's ``WeightAveraging``:

    - it restores the iterate from a checkpoint's ``current_model_state`` whenever it loads one, also
      to test it; outside fitting the checkpoint's ``state_dict`` (the average) is what Lightning has
      loaded, and stays;
    - a checkpoint saved while validation has the average swapped in (SIGTERM or SLURM's SIGUSR1
      between validation batches) would store the two the wrong way round; they are put back."""

    swapped = False  # the average is in the LightningModule (validation), the iterate in the averaged copy

    def on_validation_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_validation_epoch_start(trainer, pl_module)  # type: ignore[misc]
        self.swapped = self.averaging()  # type: ignore[attr-defined]

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_validation_epoch_end(trainer, pl_module)  # type: ignore[misc]
        self.swapped = False

    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]) -> None:
        super().on_save_checkpoint(trainer, pl_module, checkpoint)  # type: ignore[misc]
        if self.swapped and "current_model_state" in checkpoint:
            checkpoint["state_dict"], checkpoint["current_model_state"] = checkpoint["current_model_state"], checkpoint["state_dict"]

    def on_load_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]) -> None:
        if trainer.state.fn == TrainerFn.FITTING:
            super().on_load_checkpoint(trainer, pl_module, checkpoint)  # type: ignore[misc]


class EMAWeights(TestsTheAverage, EMAWeightAveraging):
    """EMA after every optimizer step (Lightning's): averaged from the first step on."""

    def averaging(self) -> bool:
        return True


class SWAWeights(TestsTheAverage, WeightAveraging):
    """The equal average of the weights at the end of epochs ``start`` (0-based) and later, trained
    there at the constant ``lr``. Before ``start`` nothing is averaged: the iterates are validated
    and checkpointed as without SWA. The average takes an epoch's weights after its last optimizer
    step, so that epoch's validation (which Lightning runs before the epoch's end) already sees it."""

    def __init__(self, lr: float, start: int):
        super().__init__(use_buffers=True)  # the buffers are recomputed anyway (RefreshBatchNorm)
        self.lr, self.start, self.averaged, self.last_step = lr, start, 0, False

    def averaging(self) -> bool:
        return self.averaged > 0

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int) -> None:
        self.last_step = trainer.current_epoch >= self.start and batch_idx + 1 == trainer.num_training_batches
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)

    def should_update(self, step_idx: Optional[int] = None, epoch_idx: Optional[int] = None) -> bool:
        if step_idx is None or not self.last_step:
            return False
        self.averaged += 1  # WeightAveraging updates the average when this says so
        return True

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.current_epoch >= self.start:
            for optimizer in trainer.optimizers:
                for group in optimizer.param_groups:
                    group["lr"] = self.lr

    def on_validation_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.averaging():
            super().on_validation_epoch_start(trainer, pl_module)

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.averaging():
            super().on_validation_epoch_end(trainer, pl_module)

    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]) -> None:
        if self.averaging():
            super().on_save_checkpoint(trainer, pl_module, checkpoint)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.averaging():
            super().on_train_end(trainer, pl_module)

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "averaged_epochs": self.averaged}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        self.averaged = state_dict.get("averaged_epochs", 0)


def has_batch_norm(module: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in module.modules())


class RefreshBatchNorm(Callback):
    """Recompute the batch-norm running statistics of the averaged weights (``torch.optim.swa_utils.update_bn``:
    one pass over the training batches) when Lightning validates them, when it checkpoints them and
    when training ends. Listed after the averaging callback, so its hooks run after that one's."""

    def __init__(self, averager: EMAWeights | SWAWeights):
        self.averager = averager

    def _batches(self, trainer: pl.Trainer):
        return trainer.datamodule.train_dataloader()

    def _refresh(self, trainer: pl.Trainer, net: nn.Module, device: torch.device) -> None:
        was_training = net.training
        update_bn(self._batches(trainer), net, device=device)
        net.train(was_training)

    refreshed_at = -1  # the global step of the last refresh at validation

    def on_validation_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.averager.averaging() and not trainer.sanity_checking and has_batch_norm(pl_module.net):
            with torch.no_grad():
                self._refresh(trainer, pl_module.net, pl_module.device)  # the averaged weights are in place now
            self.refreshed_at = trainer.global_step  # swapped back after validation, the average keeps these statistics

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.averager.averaging() and has_batch_norm(pl_module.net):
            with torch.no_grad():
                self._refresh(trainer, pl_module.net, pl_module.device)

    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]) -> None:
        if not (self.averager.averaging() and has_batch_norm(pl_module.net)):
            return
        if self.refreshed_at == trainer.global_step and not self.averager.swapped:
            return  # saved right after validation: the average's statistics were recomputed for these very weights
        net = copy.deepcopy(pl_module.net)  # the checkpoint's (averaged) weights, their statistics recomputed
        state = {k.removeprefix("net."): v for k, v in checkpoint["state_dict"].items() if k.startswith("net.")}
        net.load_state_dict(state)
        with torch.no_grad():
            self._refresh(trainer, net, pl_module.device)
        for name, value in net.state_dict().items():
            checkpoint["state_dict"][f"net.{name}"] = value
