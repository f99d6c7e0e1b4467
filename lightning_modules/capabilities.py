"""What a LightningModule applies, declared on the class (``supports = Supports(...)``) and read by one
generic check (``experiments/build.py::check_supported``), as timm's ``OptimInfo`` flags declare what
an optimizer takes. A setting a module does not apply is refused before training, never dropped."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional


@dataclass(frozen=True)
class Supports:
    #: the ``regularization.*`` keys the module applies; every other key must stay at its neutral
    #: value (``experiments/configs/regularization/none.yaml``). None: all of them.
    regularizers: Optional[frozenset[str]] = None
    #: trained on labels: an accuracy to stop at (``callbacks.stop_at_train_acc``) and a loss the
    #: sharpness probes can perturb
    labels: bool = True
    #: optimizers that evaluate the loss twice per step (SAM)
    two_pass: bool = True
    #: Lightning steps the optimizer (a scheduler, gradient clipping, gradient accumulation, DDP/FSDP);
    #: False: the module steps its optimizers by hand (Lightning's manual optimization)
    automatic_optimization: bool = True
    #: what the module is called in messages ("the generative model 'vae'")
    kind: str = "model"
