"""Transformer encoder over a sequence (Vaswani et al. 2017), and the pieces ``vit`` shares with it.

Both attention families: pre-norm encoder layers (multi-head self-attention + GELU feed-forward, dropout =
``regularization.dropout``), no causal mask (every token sees every other), a final LayerNorm,
then (BatchNorm when asked) → Linear.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

import torch
from torch import nn

from core.errors import ConfigError
from lightning_modules.nets import MODELS
from lightning_modules.nets.common import as_sequence, check_dropout


def encoder(d_model: int, heads: int, layers: int, ff: int, dropout: float) -> nn.TransformerEncoder:
    if d_model % heads:
        raise ConfigError(f"model.d_model={d_model}: must be divisible by model.heads={heads}")
    layer = nn.TransformerEncoderLayer(d_model, heads, ff, dropout, activation="gelu", batch_first=True, norm_first=True)
    return nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)


def sinusoidal(steps: int, d_model: int) -> torch.Tensor:
    """Fixed positional encoding of Vaswani et al. 2017: (steps, d_model)."""
    pos = torch.arange(steps).unsqueeze(1)
    freq = torch.exp(torch.arange(0, d_model, 2) * (-math.log(10000.0) / d_model))
    pe = torch.zeros(steps, d_model)
    pe[:, 0::2] = torch.sin(pos * freq)
    pe[:, 1::2] = torch.cos(pos * freq)[:, : d_model // 2]
    return pe


class Readout(nn.Module):
    """(B, d) → LayerNorm → (BatchNorm) → Linear → (B, num_outputs)."""

    def __init__(self, d_model: int, num_outputs: int, batch_norm: bool):
        super().__init__()
        self.ln = nn.LayerNorm(d_model)
        self.bn = nn.BatchNorm1d(d_model) if batch_norm else nn.Identity()
        self.fc = nn.Linear(d_model, num_outputs)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.fc(self.bn(self.ln(h)))


@MODELS.register("transformer", inputs=("sequence", "signal", "image"), param_count=(60_000, 75_000))
class TransformerNet(nn.Module):
    """(B, L, F) → token embedding + sinusoidal positions → encoder → mean over tokens → readout.
    Signals are read along L, images row by row (as the recurrent families read them).
    ``embed_kernel``: each token embeds a window of that many steps around it (a Conv1d, zero
    padded); 1 is the plain per-step Linear embedding."""

    def __init__(
        self,
        input_shape: Sequence[int],
        num_outputs: int,
        input_kind: str = "sequence",
        d_model: int = 64,
        heads: int = 4,
        layers: int = 2,
        ff: int = 128,
        embed_kernel: int = 1,
        dropout: float = 0.0,
        batch_norm: Optional[bool] = None,
    ):
        super().__init__()
        check_dropout(dropout)
        if embed_kernel < 1 or embed_kernel % 2 == 0:
            raise ConfigError(f"model.embed_kernel={embed_kernel}: must be an odd integer >= 1")
        probe = as_sequence(torch.zeros(1, *input_shape), input_kind)  # (1, L, F)
        self.input_kind = input_kind
        self.embed = nn.Conv1d(probe.shape[2], d_model, embed_kernel, padding=embed_kernel // 2)
        self.register_buffer("positions", sinusoidal(probe.shape[1], d_model), persistent=False)
        self.encoder = encoder(d_model, heads, layers, ff, dropout)
        self.readout = Readout(d_model, num_outputs, bool(batch_norm))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.embed(as_sequence(x, self.input_kind).transpose(1, 2)).transpose(1, 2) + self.positions  # (B, L, d)
        return self.readout(self.encoder(tokens).mean(1))
