"""What a checkpoint carries to rebuild its module: a plain spec (dicts, lists, numbers, strings)
saved as the module's hyperparameters, so ``ClassificationModule.load_from_checkpoint(path)`` needs no
other argument and the file still loads with ``torch.load(..., weights_only=True)``.

A spec has ``net`` (the ``MODELS`` entry, the input's shape and kind, the number of outputs and the
family's hyperparameters), ``optimizer`` and ``scheduler`` (registry name and keys) and, for the
supervised modules, ``loss`` and ``regularization``; for the generative ones, ``levels``.
``experiments/build.py`` writes it from the config; the modules build their parts from it here.
"""

from __future__ import annotations

from typing import Any, Mapping

from torch import nn


def net(spec: Mapping[str, Any]) -> nn.Module:
    from lightning_modules.nets import build_net

    return build_net(spec["name"], spec["input_shape"], spec["kind"], spec["num_outputs"], **spec["hparams"])


def optimizer(spec: Mapping[str, Any]):
    from lightning_modules.optimizers import optimizer_factory

    return optimizer_factory(**spec)  # name, lr, weight_decay, decay_all and the optimizer's own keys


def scheduler(spec: Mapping[str, Any]):
    from lightning_modules.schedulers import scheduler_factory

    return scheduler_factory(**spec)


def loss(spec: Mapping[str, Any]) -> nn.Module:
    from lightning_modules.losses import build_loss

    return build_loss(**spec)  # name, task, label_smoothing, delta


def supervised(spec: Mapping[str, Any]) -> dict[str, Any]:
    """The parts of a ClassificationModule or RegressionModule."""
    from lightning_modules.regularizers import Regularization

    return {
        "net": net(spec["net"]),
        "loss": loss(spec["loss"]),
        "optimizer": optimizer(spec["optimizer"]),
        "scheduler": scheduler(spec["scheduler"]),
        "regularization": Regularization(**spec["regularization"]),
    }


def generative(spec: Mapping[str, Any]) -> dict[str, Any]:
    """The parts of a generative module (its own keys, e.g. the VAE's beta, are saved beside the spec)."""
    from lightning_modules.generative.levels import Levels

    return {
        "net": net(spec["net"]),
        "levels": Levels(**spec["levels"]),
        "optimizer": optimizer(spec["optimizer"]),
        "scheduler": scheduler(spec["scheduler"]),
    }
