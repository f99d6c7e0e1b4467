"""Which of a run's loggers takes what: the TensorBoard logger (figures, histograms, HParams) among
the several ``logger=[tensorboard,csv]`` may give."""

from __future__ import annotations

from typing import Optional

import pytorch_lightning as pl
from pytorch_lightning.loggers import TensorBoardLogger


def tensorboard_of(trainer: pl.Trainer) -> Optional[TensorBoardLogger]:
    """The run's TensorBoardLogger among ``trainer.loggers``, or None."""
    return next((logger for logger in trainer.loggers if isinstance(logger, TensorBoardLogger)), None)
