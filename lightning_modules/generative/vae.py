"""Variational autoencoder (Kingma & Welling 2014). Training maximizes the ELBO
    log p(x) ≥ E_q[log p(x|z)] − KL(q(z|x) ‖ N(0, I)),
logged as its two terms (``recon``: −E_q log p(x|z), ``kl``; nats per sample) and as the bound in
bits per dimension (``bits_per_dim`` = (recon + kl) / (D ln 2)), comparable with PixelCNN's exact
figure. ``beta`` weighs the KL term of the training loss (β-VAE); the reported bound always uses 1."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from core.errors import ConfigError
from lightning_modules.generative.base import GenerativeModule, categorical, randn


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(μ, diag σ²) ‖ N(0, I)) per sample, (B, latent) → (B,); zero exactly when μ = 0, σ = 1."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum(1)


def reconstruction_nll(logits: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """−log p(x|z) per sample: categorical cross-entropy summed over every value, (B,)."""
    return F.cross_entropy(logits, index, reduction="none").flatten(1).sum(1)


class VAEModule(GenerativeModule):
    TERMS = ("loss", "recon", "kl", "bits_per_dim")

    def __init__(self, *args, beta: float = 1.0, **kwargs):
        super().__init__(*args, **kwargs)
        if not beta > 0:
            raise ConfigError(f"model.beta={beta}: must be > 0")
        self.beta = float(beta)

    def terms(self, u, index):
        logits, mu, logvar = self.net(u)
        recon, kl = reconstruction_nll(logits, index).mean(), gaussian_kl(mu, logvar).mean()
        return {"loss": recon + self.beta * kl, "recon": recon, "kl": kl, "bits_per_dim": (recon + kl) / (self.dims * math.log(2))}

    def sample(self, n, generator):
        z = randn((n, self.net.latent), generator, self.device)
        draws = categorical(self.net.decode(z).movedim(1, -1), generator)  # (n, *shape) from (n, *shape, levels)
        return draws.float() / (self.levels.count - 1)

    @torch.no_grad()
    def reconstruct(self, u: torch.Tensor) -> torch.Tensor:
        """The decoder's most likely values at the posterior mean, in the unit range."""
        mu, _ = self.net.encode(u)
        return self.net.decode(mu).argmax(1).float() / (self.levels.count - 1)

    def figure_data(self, datamodule) -> dict:
        x, y = datamodule.tensors("test")
        if len(x) == 0:
            return {}
        first = x[:32].to(self.device)
        rebuilt = self.levels.to_data(self.reconstruct(self.levels.unit(first))).cpu()
        out = {"reconstructions": torch.stack([first.cpu(), rebuilt], 1).flatten(0, 1)}
        if self.net.latent == 2:
            with torch.no_grad():
                mu, _ = self.net.encode(self.levels.unit(x.to(self.device)))
            out["latent"] = (mu.cpu().numpy(), y.cpu().numpy())
        return out
