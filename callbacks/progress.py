"""Progress output: Lightning's RichProgressBar on a terminal, one plain line per epoch otherwise
(logs of batch jobs stay readable), or nothing."""

from __future__ import annotations

import sys
import time

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Callback, RichProgressBar

from core.errors import ConfigError

PROGRESS = ("auto", "rich", "plain", "none")


class EpochLines(Callback):
    """Prints ``epoch 3/20  train/loss 0.123  val/loss 0.101  val/acc 0.972  (0.2 s)`` on rank 0."""

    def __init__(
        self, keys: tuple[str, ...] = ("train/loss", "train/acc", "train/d_loss", "train/g_loss", "val/loss", "val/acc", "val/mse")
    ):
        self.keys = keys
        self._t0 = 0.0

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._t0 = time.perf_counter()

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.is_global_zero or trainer.sanity_checking:
            return
        m = trainer.callback_metrics
        parts = [f"{k} {float(m[k]):.4f}" for k in self.keys if k in m]
        print(
            f"epoch {trainer.current_epoch + 1}/{trainer.max_epochs}  " + "  ".join(parts) + f"  ({time.perf_counter() - self._t0:.2f} s)",
            flush=True,
        )


def progress_callbacks(mode: str) -> tuple[list[Callback], bool]:
    """(callbacks, enable_progress_bar) for ``callbacks.progress=mode``."""
    if mode not in PROGRESS:
        raise ConfigError(f"callbacks.progress={mode!r}: unknown; valid: {', '.join(PROGRESS)}")
    if mode == "auto":
        mode = "rich" if sys.stdout.isatty() else "plain"
    if mode == "rich":
        return [RichProgressBar(refresh_rate=10, leave=False)], True  # a redraw every 10 steps, not every step
    return ([EpochLines()] if mode == "plain" else []), False
