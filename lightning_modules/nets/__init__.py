"""Networks: plain ``nn.Module``s, one file per family, registered by config name.

Every model factory takes ``(input_shape, num_outputs, **hparams)`` where ``input_shape`` is one
sample's shape without the batch axis (``(64,)`` tabular, ``(1, 8, 8)`` image, ``(1, 40)`` signal),
and raises a ``ValueError`` naming the family and the shape when it cannot take that input.
"""
from lightning_modules.registry import Registry

MODELS = Registry("model")

from lightning_modules.nets import mlp  # noqa: E402,F401  (registers "mlp")

__all__ = ["MODELS"]
