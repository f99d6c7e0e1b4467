"""The networks of the generative families, as plain modules (their training lives in
``lightning_modules/generative/``). Each takes ``input_shape`` and ``num_outputs`` = the number of
levels a value can take (the categorical outputs per dimension where a family models them).

Inputs are in the unit range [0, 1]; the networks centre them to [-1, 1] themselves.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

from core.errors import ConfigError
from lightning_modules.nets import MODELS
from lightning_modules.nets.common import activation as make_activation

GENERATIVE_INPUTS = ("image", "signal")


def _mlp(widths: Sequence[int], activation: str, last_activation: bool = False) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(widths) - 2 or last_activation:
            layers.append(make_activation(activation))
    return nn.Sequential(*layers)


def _check_widths(key: str, widths: Sequence[int]) -> list[int]:
    if not widths or any(not isinstance(h, int) or isinstance(h, bool) or h < 1 for h in widths):
        raise ConfigError(f"model.{key}={list(widths)}: must be a non-empty list of positive integers")
    return list(widths)


def _check_positive(key: str, value) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(f"model.{key}={value}: must be an integer >= 1")
    return value


@MODELS.register("vae", inputs=GENERATIVE_INPUTS, generative=True)
class VAENet(nn.Module):
    """Gaussian encoder q(z|x) = N(μ, σ²) and a decoder p(x|z) that gives every value a categorical
    distribution over its levels, so the ELBO bounds a discrete likelihood (bits per dimension)."""

    def __init__(
        self, input_shape: Sequence[int], num_outputs: int, latent: int = 8, hidden: Sequence[int] = (256, 256), activation: str = "relu"
    ):
        super().__init__()
        self.shape, self.levels, self.latent = tuple(input_shape), num_outputs, _check_positive("latent", latent)
        d, hidden = math.prod(self.shape), _check_widths("hidden", hidden)
        self.encoder = nn.Sequential(nn.Flatten(), _mlp([d, *hidden], activation, last_activation=True), nn.Linear(hidden[-1], 2 * latent))
        self.decoder = nn.Sequential(_mlp([latent, *hidden[::-1]], activation, last_activation=True), nn.Linear(hidden[0], d * num_outputs))

    def encode(self, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.encoder(u * 2 - 1).chunk(2, dim=1)  # (B, latent) each
        return mu, logvar.clamp(-12, 8)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z).view(len(z), self.levels, *self.shape)  # (B, levels, *shape) logits

    def forward(self, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        mu, logvar = self.encode(u)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)  # the reparameterization
        return self.decode(z), mu, logvar


@MODELS.register("gan", inputs=GENERATIVE_INPUTS, generative=True)
class GANNet(nn.Module):
    """Generator z ~ N(0, I) → unit-range sample, and a discriminator sample → logit of "real"."""

    def __init__(
        self, input_shape: Sequence[int], num_outputs: int, latent: int = 32, hidden: Sequence[int] = (256, 256), activation: str = "relu"
    ):
        super().__init__()
        self.shape, self.latent = tuple(input_shape), _check_positive("latent", latent)
        d, hidden = math.prod(self.shape), _check_widths("hidden", hidden)
        self.generator = nn.Sequential(_mlp([latent, *hidden], activation, last_activation=True), nn.Linear(hidden[-1], d), nn.Sigmoid())
        self.discriminator = nn.Sequential(
            nn.Flatten(), _mlp([d, *hidden[::-1]], "leaky_relu", last_activation=True), nn.Linear(hidden[0], 1)
        )

    def generate(self, z: torch.Tensor) -> torch.Tensor:
        return self.generator(z).view(len(z), *self.shape)  # (B, *shape) in [0, 1]

    def discriminate(self, u: torch.Tensor) -> torch.Tensor:
        return self.discriminator(u * 2 - 1).squeeze(1)  # (B,) logits

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.generate(z)


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding of integer timesteps (B,) → (B, dim), as in the Transformer."""
    half = dim // 2
    freqs = torch.exp(-math.log(10_000) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    angles = t.float()[:, None] * freqs[None]
    return torch.cat([angles.sin(), angles.cos()], dim=1)


@MODELS.register("ddpm", inputs=GENERATIVE_INPUTS, generative=True)
class Denoiser(nn.Module):
    """ε-prediction network ε_θ(x_t, t): an MLP whose every hidden layer adds an embedding of t."""

    def __init__(
        self,
        input_shape: Sequence[int],
        num_outputs: int,
        hidden: Sequence[int] = (512, 512, 512),
        time_dim: int = 64,
        activation: str = "silu",
    ):
        super().__init__()
        self.shape, self.time_dim = tuple(input_shape), _check_positive("time_dim", time_dim)
        if time_dim % 2:
            raise ConfigError(f"model.time_dim={time_dim}: must be an even integer (sines and cosines in pairs)")
        d, hidden = math.prod(self.shape), _check_widths("hidden", hidden)
        self.time = nn.Sequential(nn.Linear(time_dim, time_dim), make_activation(activation))
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip([d, *hidden[:-1]], hidden))
        self.times = nn.ModuleList(nn.Linear(time_dim, h) for h in hidden)
        self.act = make_activation(activation)
        self.out = nn.Linear(hidden[-1], d)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        h, emb = x.flatten(1), self.time(timestep_embedding(t, self.time_dim))  # (B, d), (B, time_dim)
        for layer, time in zip(self.layers, self.times):
            h = self.act(layer(h) + time(emb))
        return self.out(h).view(len(x), *self.shape)  # (B, *shape)


class MaskedConv(nn.Module):
    """A convolution that sees only earlier positions in raster order (row by row, then column):
    mask "A" hides the centre too (the first layer: position i never sees its own value), "B"
    lets it through (later layers: the centre holds features of earlier positions only)."""

    def __init__(self, dims: int, in_ch: int, out_ch: int, kernel: int, mask: str):
        super().__init__()
        conv = nn.Conv1d if dims == 1 else nn.Conv2d
        self.conv = conv(in_ch, out_ch, kernel, padding=kernel // 2)
        m, c = torch.ones_like(self.conv.weight), kernel // 2
        if dims == 1:
            m[..., c + (mask == "B") :] = 0
        else:
            m[..., c, c + (mask == "B") :] = 0
            m[..., c + 1 :, :] = 0
        self.register_buffer("mask", m)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv._conv_forward(x, self.conv.weight * self.mask, self.conv.bias)


@MODELS.register("pixelcnn", inputs=GENERATIVE_INPUTS, generative=True)
class PixelCNN(nn.Module):
    """PixelCNN (van den Oord et al. 2016) over 2-D images or 1-D signals: a mask-A convolution,
    residual mask-B blocks, then per position a categorical distribution over the levels of each
    channel (channels are independent given the earlier positions). p(x) = Π_i p(x_i | x_<i)."""

    def __init__(self, input_shape: Sequence[int], num_outputs: int, channels: int = 64, blocks: int = 4, kernel: int = 5):
        super().__init__()
        self.shape, self.levels = tuple(input_shape), num_outputs
        dims = len(self.shape) - 1
        if dims not in (1, 2):
            raise ConfigError(f"model 'pixelcnn' takes (C, L) signals or (C, H, W) images, got shape {self.shape}")
        if not isinstance(kernel, int) or kernel < 3 or kernel % 2 == 0:
            raise ConfigError(f"model.kernel={kernel}: must be an odd integer >= 3")
        c = self.shape[0]
        _check_positive("channels", channels), _check_positive("blocks", blocks)
        self.first = MaskedConv(dims, c, channels, kernel, "A")
        self.blocks = nn.ModuleList(MaskedConv(dims, channels, channels, 3, "B") for _ in range(blocks))
        conv1 = nn.Conv1d if dims == 1 else nn.Conv2d
        self.head = nn.Sequential(nn.ReLU(), conv1(channels, channels, 1), nn.ReLU(), conv1(channels, c * num_outputs, 1))

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        h = self.first(u * 2 - 1)
        for block in self.blocks:
            h = h + block(torch.relu(h))
        return self.head(h).view(len(u), self.levels, *self.shape)  # (B, levels, C, *spatial) logits
