"""Recurrent families: ``rnn`` (Elman, tanh), ``lstm``, ``gru`` — one class, the cell chosen by name.

They read (L, F) sequences; a (C, L) signal is read along L with C features per step and a
(C, H, W) image row by row. The head is a Linear to ``num_outputs``: class logits, or regression
targets when the task is regression (the adding problem of ``data=sequences``).
"""

from __future__ import annotations

import functools
from typing import Optional, Sequence

import torch
from torch import nn

from core.errors import ConfigError
from lightning_modules.nets import MODELS
from lightning_modules.nets.common import as_sequence, check_dropout

CELLS = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}
READOUTS = ("last", "mean", "flatten")


class RecurrentNet(nn.Module):
    """(B, L, F) → recurrent layers → readout → (BatchNorm) → (Dropout) → Linear → (B, num_outputs).

    ``readout``: ``last`` the final hidden state (both directions' when bidirectional), ``mean`` the
    outputs averaged over time, ``flatten`` every step's output concatenated (the MNIST-1D reference
    GRU's readout)."""

    def __init__(
        self,
        cell: str,
        input_shape: Sequence[int],
        num_outputs: int,
        input_kind: str = "sequence",
        hidden: int = 64,
        layers: int = 1,
        bidirectional: bool = False,
        readout: str = "last",
        dropout: float = 0.0,
        batch_norm: Optional[bool] = None,
    ):
        super().__init__()
        check_dropout(dropout)
        if readout not in READOUTS:
            raise ConfigError(f"model.readout={readout!r}: unknown; valid: {', '.join(READOUTS)}")
        if hidden < 1 or layers < 1:
            raise ConfigError(f"model.hidden={hidden}, model.layers={layers}: both must be >= 1")
        probe = as_sequence(torch.zeros(1, *input_shape), input_kind)  # (1, L, F)
        steps, features = probe.shape[1], probe.shape[2]
        self.input_kind, self.readout, self.cell = input_kind, readout, cell
        self.rnn = CELLS[cell](
            features, hidden, num_layers=layers, batch_first=True, bidirectional=bidirectional, dropout=dropout if layers > 1 else 0.0
        )
        directions = 2 if bidirectional else 1
        width = hidden * directions * (steps if readout == "flatten" else 1)
        self.norm = nn.BatchNorm1d(width) if batch_norm else nn.Identity()
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.head = nn.Linear(width, num_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        seq = as_sequence(x, self.input_kind)  # (B, L, F)
        out, state = self.rnn(seq)  # out (B, L, dirs·H); state (layers·dirs, B, H), a pair for the LSTM
        if self.readout == "flatten":
            h = out.flatten(1)  # (B, L·dirs·H)
        elif self.readout == "mean":
            h = out.mean(1)  # (B, dirs·H)
        else:
            h_n = state[0] if self.cell == "lstm" else state
            dirs = 2 if self.rnn.bidirectional else 1
            h = h_n[-dirs:].transpose(0, 1).flatten(1)  # the last layer's final state per direction: (B, dirs·H)
        return self.head(self.drop(self.norm(h)))


PARAM_COUNTS = {"rnn": (4_000, 6_000), "lstm": (15_000, 20_000), "gru": (12_000, 15_000)}  # their tests' ranges (nets/__init__.py)
for _name in CELLS:
    MODELS.register(_name, inputs=("sequence", "signal", "image"), param_count=PARAM_COUNTS.get(_name))(
        functools.partial(RecurrentNet, _name)
    )
