"""What a finished run leaves behind: ``metrics.json`` (written atomically, last), the HParams
entry in TensorBoard (the flattened config next to the final metrics) and a short rich table."""

from __future__ import annotations

from typing import Any, Mapping

from pytorch_lightning.loggers import TensorBoardLogger

# What model selection reads from a run (a Hydra sweeper's objective, the sweep summary's order):
# the best validation value of its headline metric — never a test metric.
SELECTION_KEYS = ("val/acc_best", "val/mse_best", "val/loss_best")


def selection_value(record: Mapping[str, Any]) -> float | None:
    """The validation headline of a run's record (None for a run without a validation split)."""
    return next((float(record[k]) for k in SELECTION_KEYS if record.get(k) is not None), None)


def flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"optimizer": {"lr": 1e-3}} → {"optimizer.lr": 1e-3}; lists and None become strings."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(flatten(v, key + "."))
        else:
            out[key] = v if isinstance(v, (bool, int, float, str)) else str(v)
    return out


def log_hparams(logger: TensorBoardLogger, config: Mapping[str, Any], metrics: Mapping[str, float]) -> None:
    """Fill TensorBoard's HParams tab. Only the summaries are written: the metric values shown are
    the scalars already logged under the same tags (test/acc, ...), so nothing is logged twice."""
    from torch.utils.tensorboard.summary import hparams

    experiment, session_start, session_end = hparams(flatten(config), dict(metrics))
    from lightning_modules.compat import tensorboard_file_writer

    writer = tensorboard_file_writer(logger.experiment)
    for summary in (experiment, session_start, session_end):
        writer.add_summary(summary)
    writer.flush()


def print_table(title: str, rows: Mapping[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for k, v in rows.items():
        table.add_row(k, f"{v:.4f}" if isinstance(v, float) else str(v))
    Console().print(table)
