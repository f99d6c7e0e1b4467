"""Sharpness of a minimizer: Keskar et al. (2017)'s ε-box metric, a projected sign-gradient ascent
in the same box, and the top Hessian eigenvalue by power iteration on Hessian-vector products.

All work on a network's full training loss ``L(w)`` over given tensors, as a function of the
flattened parameter vector ``w`` (``torch.func.functional_call``, the network is not modified).

Keskar's metric: with the box C_ε = {y : |y_i| ≤ ε(|w_i| + 1)},
    φ(w, ε) = 100 · (max_{y ∈ C_ε} L(w + y) − L(w)) / (1 + L(w)),
the maximum found by L-BFGS-B (SciPy, a few iterations). From a very flat, very low-loss minimizer
L-BFGS-B's first steps barely move, so the same box is also searched by projected sign-gradient
ascent (the L∞ box's steepest-ascent direction), which reaches the corners in a few steps. Both
start from the same seeded random point at a tenth of the box (at an exact stationary point the
gradient is zero and neither would move).
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from torch import nn
from torch.func import functional_call

Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class FlatLoss:
    """``L(w)`` and its gradient for the flattened parameters ``w`` of ``net`` on ``(x, y)``, in chunks."""

    def __init__(self, net: nn.Module, loss_fn: Loss, x: torch.Tensor, y: torch.Tensor, chunk: int = 4096):
        self.net, self.loss_fn, self.x, self.y, self.chunk = net, loss_fn, x, y, chunk
        self.names = [n for n, p in net.named_parameters() if p.requires_grad]
        params = [p for _, p in net.named_parameters() if p.requires_grad]
        self.shapes = [p.shape for p in params]
        self.w0 = torch.cat([p.detach().flatten() for p in params])
        self.buffers = dict(net.named_buffers())

    def unflatten(self, w: torch.Tensor) -> dict[str, torch.Tensor]:
        out, i = {}, 0
        for name, shape in zip(self.names, self.shapes):
            n = int(np.prod(shape))
            out[name] = w[i : i + n].view(shape)
            i += n
        return out

    def __call__(self, w: torch.Tensor) -> torch.Tensor:
        """Mean loss over the data (differentiable in ``w``)."""
        params, n = self.unflatten(w), len(self.x)
        total = 0.0
        for i in range(0, n, self.chunk):
            xb, yb = self.x[i : i + self.chunk], self.y[i : i + self.chunk]
            total = total + self.loss_fn(functional_call(self.net, {**params, **self.buffers}, (xb,)), yb) * len(xb)
        return total / n

    def value_and_grad(self, w: torch.Tensor) -> tuple[float, torch.Tensor]:
        w = w.detach().requires_grad_(True)
        value = self(w)
        (grad,) = torch.autograd.grad(value, w)
        return float(value.detach()), grad


def box(w0: torch.Tensor, eps: float) -> torch.Tensor:
    """Half-widths of Keskar's box around ``w0``: ε(|w_i| + 1)."""
    return eps * (w0.abs() + 1)


def start(half: torch.Tensor, seed: int) -> torch.Tensor:
    """A random point at a tenth of the box: random signs × half / 10."""
    g = torch.Generator().manual_seed(seed)
    return (torch.randint(0, 2, half.shape, generator=g) * 2 - 1).to(half) * half / 10


def keskar_sharpness(f: FlatLoss, eps: float = 1e-3, iters: int = 10, seed: int = 0) -> float:
    """φ(w, ε) in percent, the box maximum by L-BFGS-B with at most ``iters`` iterations."""
    from scipy.optimize import minimize

    w0, half = f.w0, box(f.w0, eps)
    base = float(f(w0).detach())

    def negative(y: np.ndarray) -> tuple[float, np.ndarray]:
        value, grad = f.value_and_grad(w0 + torch.from_numpy(y).to(w0))
        return -value, -grad.double().cpu().numpy()

    h = half.double().cpu().numpy()
    result = minimize(
        negative, start(half, seed).double().cpu().numpy(), jac=True, method="L-BFGS-B", bounds=list(zip(-h, h)), options={"maxiter": iters}
    )
    return 100 * (max(-result.fun, base) - base) / (1 + base)


def sign_ascent_sharpness(f: FlatLoss, eps: float = 1e-3, steps: int = 20, seed: int = 0) -> float:
    """φ(w, ε) in percent, the box maximum by projected sign-gradient ascent: ``steps`` steps of a
    fifth of the box's half-width each, clipped to the box."""
    w0, half = f.w0, box(f.w0, eps)
    base = float(f(w0).detach())
    y, best = start(half, seed), base
    for _ in range(steps):
        value, grad = f.value_and_grad(w0 + y)
        best = max(best, value)
        y = torch.maximum(torch.minimum(y + half / 5 * grad.sign(), half), -half)
    best = max(best, float(f(w0 + y).detach()))
    return 100 * (best - base) / (1 + base)


def top_hessian_eigenvalue(f: FlatLoss, iters: int = 20, tol: float = 1e-4, seed: int = 0) -> float:
    """The largest-magnitude eigenvalue of ∇²L(w0) by power iteration on Hessian-vector products."""
    g = torch.Generator().manual_seed(seed)
    v = torch.randn(f.w0.shape, generator=g).to(f.w0)
    v /= v.norm()
    w = f.w0.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(f(w), w, create_graph=True)
    eigen = 0.0
    for _ in range(iters):
        (hv,) = torch.autograd.grad(grad, w, grad_outputs=v, retain_graph=True)
        new = float(torch.dot(hv, v))
        v = hv / (hv.norm() + 1e-12)
        if abs(new - eigen) <= tol * max(1.0, abs(new)):
            eigen = new
            break
        eigen = new
    return eigen
