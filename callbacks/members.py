"""Each member of a ``seeds=[...]`` fit selected and kept as its lone run would be, under
``<folder>/seed<k>/`` (``<run_dir>/members/`` unless ``members_dir`` says otherwise): its best
checkpoint by ``callbacks.checkpoint.monitor``
(``checkpoints/best-epochNNN.ckpt``, as Lightning's ModelCheckpoint names it), its last one
(``checkpoints/last.ckpt``, every epoch), its ``history.csv``, and its own early stopping
(``regularization.early_stopping`` on its val/loss, ``callbacks.stop_at_train_acc`` on its train/acc).
A stopped member is no longer selected, checkpointed or logged; the fit ends when every member has
stopped or at ``trainer.max_epochs``. The selection state is saved in the run's checkpoint, so
``resume=`` continues it."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Optional

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback

from core.files import write_csv_atomic


def member_dir(folder: Path, seed: int) -> Path:
    return Path(folder) / f"seed{seed}"


def _save(state: dict, path: Path) -> None:
    """Written beside, then renamed: a reader never sees half a checkpoint."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(state, tmp)
    tmp.replace(path)


class MemberRecords(Callback):
    def __init__(
        self, folder: Path, seeds: list[int], monitor: str, mode: str, patience: Optional[int], stop_at_train_acc: Optional[float]
    ):
        self.folder, self.seeds = Path(folder), list(seeds)  # the members' directories are <folder>/seed<k>
        self.monitor, self.mode, self.patience, self.stop_at = monitor, mode, patience, stop_at_train_acc
        k = len(seeds)
        self.best_score = [None] * k  # the monitored value at the best checkpoint
        self.best_path: list[Optional[str]] = [None] * k  # relative to the member's directory
        self.best_loss = [math.inf] * k  # early stopping's val/loss
        self.wait = [0] * k
        self.stopped_epoch = [None] * k  # epochs trained when it stopped
        self.stopped_step = [None] * k
        self.rows: list[list[dict]] = [[] for _ in seeds]
        self._stopping: set[int] = set()

    # ------------------------------------------------------------------ resume
    def state_dict(self) -> dict:
        keys = ("best_score", "best_path", "best_loss", "wait", "stopped_epoch", "stopped_step", "rows")
        return {**{key: getattr(self, key) for key in keys}, "stopping": sorted(self._stopping)}

    def load_state_dict(self, state: dict) -> None:
        self._stopping = set(state.pop("stopping", []))
        for key, value in state.items():
            setattr(self, key, value)

    def on_train_start(self, trainer: pl.Trainer, module) -> None:
        if not module.active.any():  # resumed after every member had stopped: nothing left to train
            trainer.should_stop = True

    # ------------------------------------------------------------------ selection, at each validation
    def _improved(self, i: int, value: float) -> bool:
        best = self.best_score[i]
        return best is None or (value > best if self.mode == "max" else value < best)

    def on_validation_end(self, trainer: pl.Trainer, module) -> None:
        if trainer.sanity_checking or "val/loss" not in module.epoch_values:
            return
        values = module.epoch_values
        for i, seed in enumerate(self.seeds):
            if not module.active[i]:
                continue
            loss = float(values["val/loss"][i])
            if self.patience is not None:  # as Lightning's EarlyStopping(monitor="val/loss", mode="min", check_finite=True)
                if not math.isfinite(loss):
                    self._stopping.add(i)
                elif loss < self.best_loss[i]:
                    self.best_loss[i], self.wait[i] = loss, 0
                else:
                    self.wait[i] += 1
                    if self.wait[i] >= self.patience:
                        self._stopping.add(i)
            value = float(values[self.monitor][i])
            if math.isnan(value):  # as ModelCheckpoint: NaN is the worst value, never an improvement
                value = -math.inf if self.mode == "max" else math.inf
            if self._improved(i, value) and trainer.is_global_zero:
                here = member_dir(self.folder, seed)
                path = here / "checkpoints" / f"best-epoch{trainer.current_epoch:03d}.ckpt"
                _save(module.member_checkpoint(i), path)
                if self.best_path[i] and self.best_path[i] != str(path.relative_to(here)):
                    (here / self.best_path[i]).unlink(missing_ok=True)
                self.best_score[i], self.best_path[i] = value, str(path.relative_to(here))

    # ------------------------------------------------------------------ last checkpoint, history, stopping
    def on_train_epoch_end(self, trainer: pl.Trainer, module) -> None:
        values = module.epoch_values
        for i, seed in enumerate(self.seeds):
            if not module.active[i]:
                continue
            if self.stop_at is not None and float(values["train/acc"][i]) > self.stop_at:
                self._stopping.add(i)  # as Lightning's EarlyStopping(stopping_threshold=..., mode="max")
            row = {"epoch": trainer.current_epoch + 1, "step": trainer.global_step}
            row.update({k: float(v[i]) for k, v in sorted(values.items()) if k.startswith(("train/", "val/"))})
            row["lr"] = trainer.optimizers[0].param_groups[0]["lr"]
            self.rows[i].append(row)
            if trainer.is_global_zero:
                here = member_dir(self.folder, seed)
                _save(module.member_checkpoint(i), here / "checkpoints" / "last.ckpt")
                write_csv_atomic(here / "history.csv", self.rows[i])
        if trainer.current_epoch + 1 < (trainer.min_epochs or 0):
            return  # as Lightning: a stop asked for before trainer.min_epochs waits for it
        for i in sorted(self._stopping):
            module.active[i] = False
            self.stopped_epoch[i], self.stopped_step[i] = trainer.current_epoch + 1, trainer.global_step
        self._stopping.clear()
        if not module.active.any():
            trainer.should_stop = True

    def tested_paths(self, which: str) -> list[Path] | None:
        """Each member's checkpoint to test: ``best`` (its own selection) or ``last``; None when a member
        has no best checkpoint (it never validated), as a lone run is then not tested."""
        if which == "best" and not all(self.best_path):
            return None
        return [
            member_dir(self.folder, s) / (self.best_path[i] if which == "best" else "checkpoints/last.ckpt")
            for i, s in enumerate(self.seeds)
        ]
