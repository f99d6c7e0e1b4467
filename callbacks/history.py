"""Records the epoch-level metrics of a run in ``<run_dir>/history.csv`` (one row per epoch), the
table that studies read their learning curves from."""
from __future__ import annotations

import csv
from pathlib import Path

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Callback


class History(Callback):
    def __init__(self, path: Path):
        self.path = Path(path)
        self.rows: list[dict] = []

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        m = trainer.callback_metrics
        row = {"epoch": trainer.current_epoch + 1, "step": trainer.global_step}
        row.update({k: float(v) for k, v in sorted(m.items()) if k.startswith(("train/", "val/")) and v.numel() == 1})
        row["lr"] = trainer.optimizers[0].param_groups[0]["lr"]
        self.rows.append(row)

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.is_global_zero or not self.rows:
            return
        keys = list(dict.fromkeys(k for row in self.rows for k in row))
        with open(self.path, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=keys)
            writer.writeheader()
            writer.writerows(self.rows)
