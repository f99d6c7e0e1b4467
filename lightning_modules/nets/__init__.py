"""Networks: plain ``nn.Module``s, one file per family, registered by config name.

Every model factory takes ``(input_shape, num_outputs, **hparams)`` where ``input_shape`` is one
sample's shape without the batch axis: ``(F,)`` tabular, ``(C, H, W)`` image, ``(C, L)`` signal,
``(L, F)`` sequence. Each entry declares the data kinds it takes (``inputs=``); ``build_net`` checks
the kind and the hyperparameter names before the factory runs, and tells sequence models whether a
2-D shape is a signal (channels first) or a sequence (time first).
"""

from __future__ import annotations

import inspect
from typing import Any, Sequence

from torch import nn

from core.errors import ConfigError
from core.registry import Registry, check_types

MODELS = Registry("model")

from lightning_modules.nets import (  # noqa: E402,F401  (each registers its family; rnn, lstm and gru live in recurrent)
    alexnet,
    cnn,
    densenet,
    generative,
    googlenet,
    lenet,
    mlp,
    recurrent,
    resnet,
    transformer,
    vgg,
    vit,
)

KIND_SHAPES = {"tabular": 1, "image": 3, "signal": 2, "sequence": 2}  # axes of one sample
SUPPLIED = ("input_shape", "num_outputs", "input_kind")  # given by build_net, never by model.* keys


def build_net(name: str, input_shape: Sequence[int], input_kind: str, num_outputs: int, **hparams: Any) -> nn.Module:
    """``MODELS`` entry ``name`` for data of ``input_kind`` with ``input_shape``; an input the family
    cannot take, or a hyperparameter it does not have, is a ``ValueError`` naming both."""
    entry = MODELS.get(name)
    shape = tuple(int(d) for d in input_shape)
    takes = entry.info.get("inputs", ())
    if input_kind not in takes or len(shape) != KIND_SHAPES[input_kind]:
        raise ConfigError(f"model={name}: cannot take {input_kind} data of shape {shape}; it takes {', '.join(takes)} data")
    params = inspect.signature(entry.factory).parameters
    for key in hparams:
        if key not in params or key in SUPPLIED:
            accepted = [p for p in params if p not in (*SUPPLIED, "dropout", "batch_norm")]
            raise ConfigError(f"model.{key}: not a hyperparameter of model {name!r}; it has: {', '.join(accepted)}")
    check_types(entry.factory, hparams, "model")
    if "input_kind" in params:
        hparams["input_kind"] = input_kind
    return entry.factory(shape, num_outputs, **hparams)


__all__ = ["MODELS", "build_net"]
