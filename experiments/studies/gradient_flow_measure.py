"""The measurements of ``study=gradient_flow`` (experiments/studies/gradient_flow.py), on lone networks:

* ``mlp_profile``: an MLP's per-layer weight-gradient norms (each Linear's, the output layer's last)
  and the standard deviation of each hidden layer's activation output, on one fixed batch;
* ``state_gradients``: the norm of ∂loss/∂h_t at every step t of a one-layer recurrent net, its
  recurrence unrolled by hand (``unroll``) with the layer's own weights, since ``nn.RNN``'s ``out``
  tensor is a copy of the states, not on the recurrence path, and its gradient says nothing about
  how far back the loss reaches;
* ``decay``: the per-step factor of an exponential fitted to such a profile, and the fit's R².

Both measurements run in float64 on a copy of the network: a vanishing gradient of 1e-35 must not
underflow float32's range. Lightning callbacks take them at the first step of a seeded fit
(``AtStart``)."""

from __future__ import annotations

import copy
import math
from typing import Callable, Sequence

import numpy as np
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import nn

CELLS = {nn.RNN: nn.RNNCell, nn.LSTM: nn.LSTMCell, nn.GRU: nn.GRUCell}


def hidden_activations(net: nn.Module) -> list[nn.Module]:
    """The activation modules of an MLP (lightning_modules/nets/mlp.py), one per hidden layer, in order."""
    skip = (nn.Linear, nn.Flatten, nn.Dropout, nn.BatchNorm1d, nn.Identity)
    return [m for m in net.layers if not isinstance(m, skip)]


def mlp_profile(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> dict[str, list[float] | float]:
    """Per-layer ``grad``: the Frobenius norm of ∂loss/∂W of each Linear (hidden layers, then the
    output layer), the loss the mean cross-entropy on (x, y); per hidden layer ``act_std``: the
    standard deviation of its activation's output over the batch and units; ``loss``."""
    net = copy.deepcopy(net).double().eval()
    linears = [m for m in net.modules() if isinstance(m, nn.Linear)]
    stds: list[float] = []
    hooks = [a.register_forward_hook(lambda _m, _i, out: stds.append(float(out.detach().std()))) for a in hidden_activations(net)]
    try:
        loss = F.cross_entropy(net(x.double()), y)
    finally:
        for h in hooks:
            h.remove()
    grads = torch.autograd.grad(loss, [m.weight for m in linears])
    return {"grad": [float(g.norm()) for g in grads], "act_std": stds, "loss": float(loss.detach())}


def recurrent_cell(layer: nn.RNNBase) -> nn.Module:
    """The cell (``nn.RNNCell``/``LSTMCell``/``GRUCell``) holding a one-layer, one-direction recurrent
    layer's own weights (a copy): the same gate layout, so one step of it is one step of the layer."""
    if layer.num_layers != 1 or layer.bidirectional or getattr(layer, "proj_size", 0):
        raise ValueError("recurrent_cell: a one-layer, one-direction layer without projection")
    kind = CELLS[type(layer)]
    extra = {"nonlinearity": layer.nonlinearity} if isinstance(layer, nn.RNN) else {}
    cell = kind(layer.input_size, layer.hidden_size, bias=layer.bias, **extra)
    with torch.no_grad():
        for name, p in cell.named_parameters():
            p.copy_(getattr(layer, f"{name}_l0"))
    return cell.to(next(layer.parameters()).dtype)


def unroll(step: Callable, x: torch.Tensor, state) -> tuple[list[torch.Tensor], object]:
    """``state = step(x[:, t], state)`` for t = 0 … L−1 over a batch-first (B, L, F) input; the
    hidden state h_t after each step (the state's first element when it is a pair) and the final state."""
    hs = []
    for t in range(x.shape[1]):
        state = step(x[:, t], state)
        hs.append(state[0] if isinstance(state, tuple) else state)
    return hs, state


def state_gradients(step: Callable, head: Callable, x: torch.Tensor, y: torch.Tensor, state) -> tuple[list[float], float]:
    """The Frobenius norm of ∂loss/∂h_t over the batch for every step t (the total derivative: every
    path from h_t to the loss), the loss the mean squared error of ``head(h_L)`` against ``y``; and the loss."""
    with torch.enable_grad():  # every h_t on the graph, whatever the step's own weights require
        state = tuple(s.detach().requires_grad_() for s in state) if isinstance(state, tuple) else state.detach().requires_grad_()
        hs, _ = unroll(step, x, state)
        loss = F.mse_loss(head(hs[-1]), y)
    grads = torch.autograd.grad(loss, hs)
    return [float(g.norm()) for g in grads], float(loss.detach())


def recurrent_step(net: nn.Module) -> tuple[Callable, Callable, object]:
    """A RecurrentNet (lightning_modules/nets/recurrent.py, readout ``last``, no batch norm or dropout
    before its head) as (step, head, initial state for a batch size), in float64, copies of its own weights."""
    if getattr(net, "readout", "last") != "last":
        raise ValueError(f"recurrent_step: the head must read the last hidden state (readout 'last'), not {net.readout!r}")
    for name in ("norm", "drop"):
        if not isinstance(getattr(net, name, nn.Identity()), nn.Identity):
            raise ValueError(f"recurrent_step: the net's {name} must be the identity (no batch norm or dropout before the head)")
    cell = recurrent_cell(net.rnn).double()
    head = copy.deepcopy(net.head).double()
    lstm = isinstance(net.rnn, nn.LSTM)

    def zeros(batch: int):
        h = torch.zeros(batch, net.rnn.hidden_size, dtype=torch.float64)
        return (h, h.clone()) if lstm else h

    return cell, head, zeros


def recurrent_profile(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> dict[str, list[float] | float]:
    """``grad``: ‖∂loss/∂h_t‖ for t = 1 … L of a RecurrentNet on (x, y); ``loss``."""
    cell, head, zeros = recurrent_step(net)
    grads, loss = state_gradients(cell, head, x.double(), y.double(), zeros(len(x)))
    return {"grad": grads, "loss": loss}


def decay(grads: Sequence[float]) -> tuple[float, float]:
    """The per-step factor ρ of the exponential ‖∂L/∂h_t‖ ∝ ρ^(L−t) fitted by least squares to the
    logarithms (ρ < 1: the gradient shrinks going back in time), and the fit's R² (1: exactly exponential)."""
    g = np.maximum(np.asarray(grads, dtype=float), 1e-300)
    back = np.arange(len(g))[::-1]  # L − t: steps before the end
    logs = np.log(g)
    slope, intercept = np.polyfit(back, logs, 1)
    resid = logs - (slope * back + intercept)
    total = float(((logs - logs.mean()) ** 2).sum())
    r2 = 1.0 - float((resid**2).sum()) / total if total > 0 else 1.0
    return math.exp(slope), r2


class AtStart(pl.Callback):
    """Calls ``measure(lone_net, i)`` for each member i of a seeded fit before its first step; keeps the results."""

    def __init__(self, measure: Callable[[nn.Module, int], dict]):
        self.measure = measure
        self.found: list[dict] = []

    def on_train_start(self, trainer, pl_module) -> None:
        self.found = [self.measure(net, i) for i, net in enumerate(lone_nets(pl_module))]


def lone_nets(module) -> list[nn.Module]:
    """Each member of a seeded fit (a MembersModule) as a lone network on the CPU (its own weights now)."""
    like = copy.deepcopy(module.lone.net).cpu()
    return [module.net.member(i, like).cpu() for i in range(module.net.k)]


def lone_members(module) -> list[nn.Module]:
    """Each member of a finished seeded fit as a lone network on the CPU, in eval mode."""
    return [net.eval() for net in lone_nets(module)]
