"""Networks: plain ``nn.Module``s, one file per family, registered by config name.

Every model factory takes ``(input_shape, num_outputs, **hparams)`` where ``input_shape`` is one
sample's shape without the batch axis: ``(F,)`` tabular, ``(C, H, W)`` image, ``(C, L)`` signal,
``(L, F)`` sequence. Each entry declares the data kinds it takes (``inputs=``); ``build_net`` checks
the kind and the hyperparameter names before the factory runs, and tells sequence models whether a
2-D shape is a signal (channels first) or a sequence (time first).

A family is a file in this package: every module here is imported (``_discover``), so writing
``nets/<family>.py`` with ``@MODELS.register(...)`` is all it takes to register it. What an entry
declares besides ``inputs``: ``generative=True`` (a network of a generative module, tested in
tests/test_generative.py rather than as a classifier), and for its tests ``param_count=(lo, hi)``,
its parameter count with its shipped config (``experiments/configs/model/<name>.yaml``) on MNIST-1D
signals (1, 40) with 10 outputs. An entry without ``param_count`` still gets every generic check in
tests/test_nets.py (shapes, gradients, the dropout/batch-norm switches, learning, no mixing in eval).
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from typing import Any, Sequence

from torch import nn

from core.errors import ConfigError
from core.registry import Registry, check_types
from lightning_modules.nets import init

MODELS = Registry("model")


def _discover() -> None:
    """Import every module of this package, so a family registers by being a file here: no import
    line to add. Cheap: the package's own files, each imported once (as a hand-kept list did)."""
    for module in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{module.name}")


_discover()

KIND_SHAPES = {"tabular": 1, "image": 3, "signal": 2, "sequence": 2}  # axes of one sample
SUPPLIED = ("input_shape", "num_outputs", "input_kind")  # given by build_net, never by model.* keys


def build_net(name: str, input_shape: Sequence[int], input_kind: str, num_outputs: int, **hparams: Any) -> nn.Module:
    """``MODELS`` entry ``name`` for data of ``input_kind`` with ``input_shape``; an input the family
    cannot take, or a hyperparameter it does not have, is a ``ValueError`` naming both."""
    entry = MODELS.get(name)
    scheme, std = hparams.pop("init", "default"), hparams.pop("init_std", 0.01)  # every family's: applied after building
    init.check(scheme, std)
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
    act = hparams.get("activation", params["activation"].default if "activation" in params else None)  # the family's own if not given
    return init.initialize(entry.factory(shape, num_outputs, **hparams), scheme, std, act)


__all__ = ["MODELS", "build_net"]
