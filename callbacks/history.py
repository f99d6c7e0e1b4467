"""Records the epoch-level metrics of a run in ``<run_dir>/history.csv`` (one row per epoch, rewritten
atomically after each), the table that studies read their learning curves from."""

from __future__ import annotations

import csv
from pathlib import Path

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Callback

from core.files import write_csv_atomic


class History(Callback):
    def __init__(self, path: Path):
        self.path = Path(path)
        self.rows: list[dict] = []

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """A resumed run keeps the rows of the epochs it does not redo."""
        if trainer.current_epoch > 0 and self.path.exists() and not self.rows:
            with open(self.path, newline="") as f:
                self.rows = [
                    {k: (int(float(v)) if k in ("epoch", "step") else float(v)) if v else v for k, v in row.items()}
                    for row in csv.DictReader(f)
                    if float(row["epoch"]) <= trainer.current_epoch
                ]

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        m = trainer.callback_metrics
        row = {"epoch": trainer.current_epoch + 1, "step": trainer.global_step}
        row.update({k: float(v) for k, v in sorted(m.items()) if k.startswith(("train/", "val/")) and v.numel() == 1})
        row["lr"] = trainer.optimizers[0].param_groups[0]["lr"]
        self.rows.append(row)
        self.write(trainer)  # every epoch: a killed run keeps the curve up to its last checkpoint

    def write(self, trainer: pl.Trainer) -> None:
        if not trainer.is_global_zero or not self.rows:
            return
        write_csv_atomic(self.path, self.rows)  # a failed write (disk full) keeps the previous table
