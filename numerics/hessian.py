"""The Hessian of a network's training loss, as PyHessian (Yao et al. 2020) measures it, without
forming it: Hessian-vector products through ``torch.func`` (forward-over-reverse: ``jvp`` of
``grad``), summed over chunks of the data so that memory stays one chunk's.

- ``top_eigenvalues``: the k largest eigenvalues by Lanczos with full reorthogonalization (the
  extreme Ritz values converge first, and more surely than deflated power iteration's one at a time).
- ``hutchinson_trace``: tr(H) = E[vᵀHv] over Rademacher v, with the estimator's standard error.
- ``spectral_density``: stochastic Lanczos quadrature (Ubaru et al. 2017; Ghorbani et al. 2019):
  several Lanczos runs from random unit vectors; each run's Ritz values θⱼ weighted by the squared
  first components τⱼ of their eigenvectors approximate the spectral measure, and the average of
  the runs, each spike widened into a Gaussian of variance σ², is the density (it integrates to 1).
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import torch
from torch.func import functional_call, grad, jvp

from numerics.sharpness import FlatLoss


class Hessian:
    """v ↦ ∇²L(w0) v for the loss ``f`` (a ``FlatLoss``: a network, a loss, data) at its weights."""

    def __init__(self, f: FlatLoss):
        self.f, self.size, self.calls = f, f.w0.numel(), 0
        self.chunks = [(f.x[i : i + f.chunk], f.y[i : i + f.chunk]) for i in range(0, len(f.x), f.chunk)]

    def _loss(self, w: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        f = self.f
        return f.loss_fn(functional_call(f.net, {**f.unflatten(w), **f.buffers}, (x,)), y)

    def __matmul__(self, v: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        out = torch.zeros_like(v)
        n = len(self.f.x)
        with warnings.catch_warnings():  # torch's first forward-mode call scripts its decompositions, a deprecated API of its own
            warnings.filterwarnings("ignore", message=".*torch.jit.script.* is deprecated", category=DeprecationWarning)
            for x, y in self.chunks:
                _, hv = jvp(lambda w: grad(self._loss)(w, x, y), (self.f.w0,), (v,))  # noqa: B023 — called at once
                out += hv * (len(x) / n)
        return out


def lanczos(h: Hessian, steps: int, seed: int = 0, start: torch.Tensor | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``steps`` Lanczos iterations (fewer if the Krylov space closes) from a random unit vector (or
    ``start``), with full reorthogonalization: the tridiagonal matrix's eigenvalues (Ritz values,
    ascending) and the squared first components of its eigenvectors (their SLQ weights, summing to 1)."""
    w0 = h.f.w0
    if start is None:
        g = torch.Generator().manual_seed(seed)
        start = torch.randn(h.size, generator=g, dtype=torch.float64).to(w0)
    v = start / start.norm()
    basis, alphas, betas = [v], [], []
    for i in range(min(steps, h.size)):
        w = h @ v
        alpha = float(torch.dot(w, v))
        alphas.append(alpha)
        w = w - alpha * v - (betas[-1] * basis[-2] if betas else 0)
        for b in basis:  # full reorthogonalization, twice is enough (Kahan–Parlett)
            w = w - torch.dot(w, b) * b
        for b in basis:
            w = w - torch.dot(w, b) * b
        beta = float(w.norm())
        if i == min(steps, h.size) - 1 or beta < 1e-8 * max(1.0, abs(alpha)):
            break
        betas.append(beta)
        v = w / beta
        basis.append(v)
    t = np.diag(alphas) + np.diag(betas[: len(alphas) - 1], 1) + np.diag(betas[: len(alphas) - 1], -1)
    theta, vectors = np.linalg.eigh(t)
    return theta, vectors[0] ** 2


def top_eigenvalues(h: Hessian, k: int, steps: int = 60, seed: int = 0) -> list[float]:
    """The ``k`` largest eigenvalues of H (largest first): the top Ritz values of ``steps`` (≥ 2k) Lanczos steps."""
    theta, _ = lanczos(h, max(steps, 2 * k), seed)
    return [float(t) for t in theta[::-1][:k]]


def hutchinson_trace(h: Hessian, samples: int, seed: int = 0) -> tuple[float, float]:
    """tr(H) estimated as the mean of vᵀHv over ``samples`` Rademacher vectors, and its standard error."""
    g = torch.Generator().manual_seed(seed)
    values = []
    for _ in range(samples):
        v = (torch.randint(0, 2, (h.size,), generator=g) * 2 - 1).to(h.f.w0)
        values.append(float(torch.dot(v, h @ v)))
    se = float(np.std(values, ddof=1) / math.sqrt(samples)) if samples > 1 else math.nan
    return float(np.mean(values)), se


def spectral_density(
    h: Hessian, runs: int, steps: int, seed: int = 0, grid_points: int = 1000, sigma: float | None = None
) -> tuple[np.ndarray, np.ndarray, list[tuple[np.ndarray, np.ndarray]]]:
    """SLQ: (eigenvalue grid, density on it, each run's (Ritz values, weights)). ``sigma``: each
    spike's standard deviation; None: 1% of the spectrum's range found (at least 1e-3)."""
    nodes = [lanczos(h, steps, seed + r) for r in range(runs)]
    lo = min(float(t.min()) for t, _ in nodes)
    hi = max(float(t.max()) for t, _ in nodes)
    sigma = sigma if sigma is not None else max(0.01 * (hi - lo), 1e-3)
    pad = 5 * sigma
    grid = np.linspace(lo - pad, hi + pad, grid_points)
    density = np.zeros_like(grid)
    for theta, weights in nodes:
        density += (weights[:, None] * np.exp(-((grid[None, :] - theta[:, None]) ** 2) / (2 * sigma**2))).sum(0)
    density /= runs * sigma * math.sqrt(2 * math.pi)
    return grid, density, nodes
