"""Loss registry: a config name → an ``nn.Module`` loss; ``task`` says which targets it takes."""

from __future__ import annotations

from torch import nn

from core.errors import ConfigError
from core.registry import Registry
from core.rules import check_all
from lightning_modules.rules import LOSS, REGULARIZATION

LOSSES = Registry("loss")


@LOSSES.register("cross_entropy", task="classification", expect=([[2.0, 0.0]], [0], 0.1269280110429726))
def cross_entropy(label_smoothing: float = 0.0) -> nn.Module:
    return nn.CrossEntropyLoss(label_smoothing=label_smoothing)


@LOSSES.register("mse", task="regression", expect=([[2.0, 0.0]], [[1.0, 3.0]], 5.0))
def mse() -> nn.Module:
    return nn.MSELoss()


@LOSSES.register("mae", task="regression", expect=([[2.0, 0.0]], [[1.0, 3.0]], 2.0))
def mae() -> nn.Module:
    return nn.L1Loss()


@LOSSES.register("huber", task="regression", expect=([[2.0, 0.0]], [[1.0, 3.0]], 1.5))
def huber(delta: float = 1.0) -> nn.Module:
    return nn.HuberLoss(delta=delta)


DEFAULT_LOSS = {"classification": "cross_entropy", "regression": "mse"}


def build_loss(name: str | None, task: str, label_smoothing: float = 0.0, delta: float = 1.0) -> nn.Module:
    """The named loss (or the task's default when ``name`` is None), checked against the task."""
    check_all(LOSS, {"delta": delta}, "loss")
    check_all(REGULARIZATION, {"label_smoothing": label_smoothing}, "regularization")
    entry = LOSSES.get(name if name is not None else DEFAULT_LOSS[task], key="loss.name")
    if entry.info["task"] != task:
        fits = [e.name for e in LOSSES if e.info["task"] == task]
        raise ConfigError(
            f"loss.name={entry.name!r} is a {entry.info['task']} loss but the data is a {task} task; use one of: {', '.join(fits)}"
        )
    if entry.name == "cross_entropy":
        return entry.factory(label_smoothing=label_smoothing)
    if label_smoothing:
        raise ConfigError(
            f"regularization.label_smoothing={label_smoothing}: only applies to classification; set it to 0 for loss {entry.name!r}"
        )
    return entry.factory(delta=delta) if entry.name == "huber" else entry.factory()
