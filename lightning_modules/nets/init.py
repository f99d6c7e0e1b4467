"""Initialization by name for every family (``model.init``, ``model.init_std``), applied after a
network is built: the weight matrices and kernels of its linear, convolutional, recurrent and
attention layers get the scheme, their biases zero; normalization layers, embeddings and tokens
keep their own. ``default`` leaves PyTorch's own initialization (biases included) untouched.

Gains are matched to ``model.activation`` as ``torch.nn.init.calculate_gain`` gives them (relu √2,
tanh 5/3, sigmoid 1, leaky_relu with its slope); an activation it has no gain for (gelu, silu, elu)
takes relu's, the nearest rectifier."""

from __future__ import annotations

import math

from torch import nn

from core.errors import ConfigError

INITS = ("default", "xavier_uniform", "xavier_normal", "kaiming_uniform", "kaiming_normal", "orthogonal", "normal", "zeros")
LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.RNNBase, nn.MultiheadAttention)
NONLINEARITY = {"relu": ("relu", None), "tanh": ("tanh", None), "sigmoid": ("sigmoid", None), "leaky_relu": ("leaky_relu", 0.2)}


def nonlinearity(activation: str | None) -> tuple[str, float | None]:
    """``calculate_gain``'s name (and parameter) for ``activation``; relu's for those it lacks."""
    return NONLINEARITY.get(activation or "relu", ("relu", None))


def gain(activation: str | None) -> float:
    name, param = nonlinearity(activation)
    return nn.init.calculate_gain(name, param)


def check(scheme: str, std: float) -> None:
    if scheme not in INITS:
        raise ConfigError(f"model.init={scheme!r}: unknown; valid: {', '.join(INITS)}")
    if not isinstance(std, (int, float)) or isinstance(std, bool) or std <= 0:
        raise ConfigError(f"model.init_std={std}: must be a number > 0")


def initialize(net: nn.Module, scheme: str, std: float = 0.01, activation: str | None = None) -> nn.Module:
    """``net`` with ``scheme`` applied in place (and returned)."""
    check(scheme, std)
    if scheme == "default":
        return net
    name, param = nonlinearity(activation)
    g = gain(activation)
    for module in net.modules():
        if not isinstance(module, LAYERS):
            continue
        for pname, p in module.named_parameters(recurse=False):
            if "bias" in pname:
                nn.init.zeros_(p)
            elif p.dim() >= 2:
                apply(p, scheme, std, g, name, param)
    return net


def apply(w, scheme: str, std: float, g: float, name: str, param: float | None) -> None:
    if scheme == "xavier_uniform":
        nn.init.xavier_uniform_(w, gain=g)
    elif scheme == "xavier_normal":
        nn.init.xavier_normal_(w, gain=g)
    elif scheme == "kaiming_uniform":
        nn.init.kaiming_uniform_(w, a=param or 0, nonlinearity=name)
    elif scheme == "kaiming_normal":
        nn.init.kaiming_normal_(w, a=param or 0, nonlinearity=name)
    elif scheme == "orthogonal":
        nn.init.orthogonal_(w, gain=g)
    elif scheme == "normal":
        nn.init.normal_(w, 0.0, std)
    elif scheme == "zeros":
        nn.init.zeros_(w)


def expected_std(w, scheme: str, std: float, activation: str | None) -> float:
    """The standard deviation ``scheme`` gives a weight ``w`` (for the known-answer tests)."""
    receptive = w[0][0].numel()  # a kernel's size (1 for a matrix)
    fan_in, fan_out = w.shape[1] * receptive, w.shape[0] * receptive
    g = gain(activation)
    return {
        "xavier_uniform": g * math.sqrt(2.0 / (fan_in + fan_out)),
        "xavier_normal": g * math.sqrt(2.0 / (fan_in + fan_out)),
        "kaiming_uniform": g / math.sqrt(fan_in),
        "kaiming_normal": g / math.sqrt(fan_in),
        "orthogonal": g / math.sqrt(max(w.shape[0], w[0].numel())),
        "normal": std,
        "zeros": 0.0,
    }[scheme]
