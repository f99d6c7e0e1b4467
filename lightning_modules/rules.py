"""The rules (``core/rules.py``) of the keys the LightningModules' parts apply, defined once: the
optimizer, scheduler and loss registries check them when they build, the training-step
regularizers and the networks in their constructors, ``experiments/validation.py`` before anything
runs. Torch-free, so a refused setting costs no torch import."""

from __future__ import annotations

from core.rules import boolean, fraction, number, optional_boolean

#: ``optimizer.*``
OPTIMIZER = {
    "lr": number(0, lo_open=True),
    "momentum": number(0, 1, hi_open=True),
    "eps": number(0, lo_open=True),
    "rho": number(0, lo_open=True),
    "adaptive": boolean,
    "nesterov": boolean,
}
LR = OPTIMIZER["lr"]

#: ``scheduler.*``
SCHEDULER = {
    "min_lr_ratio": number(0, 1),
    "step_size": number(1, integer=True),
    "gamma": number(0, 1, lo_open=True),
    "pct_start": number(0, 1, hi_open=True),
    "warmup_fraction": number(0, 1, hi_open=True),
    "factor": number(0, 1, lo_open=True, hi_open=True),
    "patience": number(0, integer=True),
}

#: ``loss.*``
LOSS = {"delta": number(0, lo_open=True)}

#: the ``regularization.*`` keys applied by the optimizer (weight_decay, decay_all), the training
#: step (l1, l2, input_noise, weight_noise; decay_all), the networks (dropout, batch_norm) and the loss
REGULARIZATION = {
    "weight_decay": number(0),
    "decay_all": boolean,
    "l1": number(0),
    "l2": number(0),
    "input_noise": number(0),
    "weight_noise": number(0),
    "dropout": fraction,
    "batch_norm": optional_boolean,
    "label_smoothing": fraction,
}
