"""2-D test functions for watching optimizers move: Rosenbrock's curved valley, Beale's flat
plateaus and sharp walls, a saddle with two minima, and Rosenbrock with noisy gradients."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch


@dataclass(frozen=True)
class Surface:
    name: str
    f: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # elementwise f(x, y)
    start: tuple[float, float]
    minima: tuple[tuple[float, float], ...]
    xlim: tuple[float, float]
    ylim: tuple[float, float]
    noise: float = 0.0  # std of Gaussian noise added to each gradient coordinate


def rosenbrock(x, y):
    return (1 - x) ** 2 + 100 * (y - x**2) ** 2


def beale(x, y):
    return (1.5 - x + x * y) ** 2 + (2.25 - x + x * y**2) ** 2 + (2.625 - x + x * y**3) ** 2


def saddle(x, y):
    """x² + (y² − 1)²: a saddle at the origin between minima at (0, ±1)."""
    return x**2 + (y**2 - 1) ** 2


SURFACES = {
    s.name: s
    for s in (
        Surface("rosenbrock", rosenbrock, (-2.0, 2.0), ((1.0, 1.0),), (-2.5, 2.0), (-1.0, 4.0)),
        Surface("beale", beale, (1.0, 1.5), ((3.0, 0.5),), (-0.5, 4.0), (-1.5, 2.0)),
        Surface("saddle", saddle, (1.5, 1e-3), ((0.0, 1.0), (0.0, -1.0)), (-2.0, 2.0), (-1.6, 1.6)),
        Surface("noisy_rosenbrock", rosenbrock, (-2.0, 2.0), ((1.0, 1.0),), (-2.5, 2.0), (-1.0, 4.0), noise=5.0),
    )
}


def optimize(surface: Surface, make_optimizer: Callable, steps: int, seed: int = 0) -> torch.Tensor:
    """The trajectory ``(steps + 1, 2)`` of ``make_optimizer(module)`` from ``surface.start``;
    rows after a divergence (non-finite or far outside the plot) are NaN."""
    point = torch.nn.Module()
    point.xy = torch.nn.Parameter(torch.tensor(surface.start, dtype=torch.float64))
    opt = make_optimizer(point)
    g = torch.Generator().manual_seed(seed)
    path = torch.full((steps + 1, 2), float("nan"), dtype=torch.float64)
    path[0] = point.xy.detach()

    def closure():
        opt.zero_grad()
        loss = surface.f(point.xy[0], point.xy[1])
        if surface.noise:  # + σ·ξ·xy: the gradient gets N(0, σ²) noise per coordinate
            loss = loss + surface.noise * (torch.randn(2, generator=g, dtype=torch.float64) * point.xy).sum()
        loss.backward()
        return loss

    for t in range(1, steps + 1):
        opt.step(closure)
        xy = point.xy.detach()
        if not torch.isfinite(xy).all() or xy.abs().max() > 1e3:
            break
        path[t] = xy
    return path


def values(surface: Surface, path: torch.Tensor) -> torch.Tensor:
    """Noise-free f along a trajectory (NaN after a divergence)."""
    return surface.f(path[:, 0], path[:, 1])


def gradients(surface: Surface, path: torch.Tensor) -> torch.Tensor:
    """Noise-free ∇f at every point of a trajectory, (steps + 1, 2)."""
    xy = path.clone().requires_grad_(True)
    surface.f(xy[:, 0], xy[:, 1]).nansum().backward()
    return xy.grad


def effective_lr(surface: Surface, path: torch.Tensor) -> torch.Tensor:
    """|Δp_t| / |∇f(p_t)| for each step t, the learning rate the optimizer effectively used; NaN
    where the gradient vanishes (at a minimum the ratio means nothing)."""
    step = (path[1:] - path[:-1]).norm(dim=1)
    grad = gradients(surface, path)[:-1].norm(dim=1)
    return torch.where(grad > 1e-6, step / grad.clamp_min(1e-6), torch.full_like(step, float("nan")))
