"""The places where the template needs something Lightning and TensorBoard expose only
privately, each isolated here and pinned by tests/test_compat.py, which fails loudly when an
upgrade moves them (pyproject.toml bounds pytorch-lightning to the versions the suite passed on).
"""

from __future__ import annotations


def logger_writes_this_step(trainer) -> bool:
    """Whether Lightning's logger connector writes this training step's logged values (every
    ``log_every_n_steps``): per-step values logged on the other steps are dropped, so they need not be
    logged at all. No public equivalent exists."""
    return bool(getattr(trainer._logger_connector, "should_update_logs", True))


def cluster_environment(trainer):
    """The cluster environment Lightning chose for this run (SLURM, TorchElastic, ...), which decides
    who handles SIGUSR1: the strategy holds it only when parallel, so the connector is asked."""
    return trainer._accelerator_connector.cluster_environment


def tensorboard_file_writer(summary_writer):
    """The FileWriter of a ``torch.utils.tensorboard.SummaryWriter``, to add HParams summaries to the
    run's own event file (``SummaryWriter.add_hparams`` would open a second run folder instead)."""
    return summary_writer._get_file_writer()
