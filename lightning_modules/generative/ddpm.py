"""Denoising diffusion (Ho et al. 2020): the forward process adds Gaussian noise over T steps,
q(x_t | x_0) = N(√ᾱ_t x_0, (1 − ᾱ_t) I) with ᾱ_t = Π_{s≤t} (1 − β_s); the network predicts the noise
ε from (x_t, t) with a mean-squared error (the "simple" loss), logged as a whole and per timestep
bucket (``loss_t0`` = the earliest fifth of the steps … ``loss_t4`` the noisiest). Sampling is
ancestral: x_T ~ N(0, I), then x_{t−1} from the learned reverse step with the posterior variance β̃_t."""

from __future__ import annotations

import math

import torch

from core.errors import ConfigError
from lightning_modules.generative.base import GenerativeModule, randn

SCHEDULES = ("linear", "cosine")
BUCKETS = 5


def beta_schedule(name: str, steps: int, beta_start: float = 1e-4, beta_end: float = 0.02) -> torch.Tensor:
    """β_1 … β_T: ``linear`` (Ho et al.; its β ends scaled by 1000/T so short chains still reach
    noise) or ``cosine`` (Nichol & Dhariwal 2021)."""
    if name not in SCHEDULES:
        raise ConfigError(f"model.schedule={name!r}: unknown; valid: {', '.join(SCHEDULES)}")
    if not isinstance(steps, int) or steps < 2:
        raise ConfigError(f"model.timesteps={steps}: must be an integer >= 2")
    if name == "linear":
        scale = 1000 / steps
        return torch.linspace(beta_start * scale, min(beta_end * scale, 0.999), steps, dtype=torch.float64).float()
    s = 0.008
    t = torch.arange(steps + 1, dtype=torch.float64) / steps
    alpha_bar = torch.cos((t + s) / (1 + s) * math.pi / 2) ** 2
    return (1 - alpha_bar[1:] / alpha_bar[:-1]).clamp(max=0.999).float()


class DDPMModule(GenerativeModule):
    TERMS = ("loss", "loss_t0", "loss_t1", "loss_t2", "loss_t3", "loss_t4")  # loss by timestep fifth

    def __init__(self, *args, timesteps: int = 200, schedule: str = "linear", beta_start: float = 1e-4, beta_end: float = 0.02, **kwargs):
        super().__init__(*args, **kwargs)
        betas = beta_schedule(schedule, timesteps, beta_start, beta_end)
        alpha_bar = torch.cumprod(1 - betas.double(), 0)
        previous = torch.cat([torch.ones(1, dtype=torch.float64), alpha_bar[:-1]])
        self.timesteps = timesteps
        self.register_buffer("betas", betas, persistent=False)
        self.register_buffer("alpha_bar", alpha_bar.float(), persistent=False)
        self.register_buffer("posterior_var", (betas.double() * (1 - previous) / (1 - alpha_bar)).float(), persistent=False)

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """x_t drawn in closed form from x_0 (data scaled to [-1, 1]); t (B,) in [0, T)."""
        ab = self.alpha_bar[t].view(-1, *([1] * (x0.dim() - 1)))
        return ab.sqrt() * x0 + (1 - ab).sqrt() * noise

    def terms(self, u, index):
        x0 = u * 2 - 1
        t = torch.randint(0, self.timesteps, (len(x0),), device=x0.device)
        noise = torch.randn_like(x0)
        per = (self.net(self.q_sample(x0, t, noise), t) - noise).pow(2).flatten(1).mean(1)  # (B,)
        out = {"loss": per.mean()}
        bucket = t * BUCKETS // self.timesteps
        for k in range(BUCKETS):
            hit = bucket == k
            if hit.any():
                out[f"loss_t{k}"] = (per[hit].mean(), int(hit.sum()))
        return out

    def sample(self, n, generator):
        x = randn((n, *self.shape), generator, self.device)
        for step in reversed(range(self.timesteps)):
            t = torch.full((n,), step, device=self.device, dtype=torch.long)
            beta, ab = self.betas[step], self.alpha_bar[step]
            mean = (x - beta / (1 - ab).sqrt() * self.net(x, t)) / (1 - beta).sqrt()
            x = mean + self.posterior_var[step].sqrt() * randn(x.shape, generator, self.device) if step > 0 else mean
        return (x.clamp(-1, 1) + 1) / 2
