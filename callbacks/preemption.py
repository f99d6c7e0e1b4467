"""SIGTERM, SIGINT (Ctrl-C) and SIGUSR1 (what schedulers send before they pre-empt a job) save the
run before it ends.

Lightning already turns SIGTERM into a flag that all ranks agree on at the next step, then raises
``SIGTERMException``; this callback routes SIGINT and SIGUSR1 to the same handler (Lightning's own
SIGINT handling exits 1 without saving) and, when the exception arrives, writes
``checkpoints/last.ckpt`` (atomically) so that ``resume=<run_dir>`` continues. A signal that came
in the instant before Lightning installed its handler is handed on to it here.
Under SLURM with auto-requeue Lightning keeps SIGUSR1 for itself: it writes ``hpc_ckpt_N.ckpt``
and requeues the job, and the requeued job continues from the newest checkpoint (run.py).
"""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

import pytorch_lightning as pl
from lightning_fabric.plugins.environments import SLURMEnvironment
from pytorch_lightning.callbacks import Callback
from pytorch_lightning.trainer.states import TrainerFn
from pytorch_lightning.utilities.exceptions import SIGTERMException

from core.signals import take_pending
from lightning_modules.compat import cluster_environment


class Preemption(Callback):
    def __init__(self, last_path: Path):
        self.last_path = Path(last_path)
        self.saved: Path | None = None

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # Lightning registers its handlers just before this hook and restores the old ones at teardown
        self._route(*self._signals(trainer))

    def on_test_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._route(*self._signals(trainer))

    @staticmethod
    def _signals(trainer: pl.Trainer) -> tuple[int, ...]:
        """SIGINT, and SIGUSR1 unless Lightning keeps it for SLURM's requeue."""
        env = cluster_environment(trainer)  # Lightning's choice (TorchElastic before SLURM under torchrun in SLURM)
        return (signal.SIGINT,) if isinstance(env, SLURMEnvironment) and env.auto_requeue else (signal.SIGINT, signal.SIGUSR1)

    @staticmethod
    def _route(*signums: int) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for signum in signums:
            signal.signal(signum, signal.getsignal(signal.SIGTERM))
        pending = take_pending()
        if pending is not None:
            os.kill(os.getpid(), pending)  # now Lightning's handler takes it: a clean stop at the next step

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        # while fitting only: during testing the module holds the tested (e.g. best) weights, not the run's state
        if isinstance(exception, SIGTERMException) and trainer.state.fn == TrainerFn.FITTING:
            trainer.save_checkpoint(self.last_path, weights_only=False)  # the full state; every rank takes part; rank 0 writes
            self.saved = self.last_path
