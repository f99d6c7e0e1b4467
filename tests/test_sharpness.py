"""Sharpness probes against closed forms: a quadratic with a known Hessian."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from numerics.sharpness import FlatLoss, keskar_sharpness, sign_ascent_sharpness, top_hessian_eigenvalue


class Quadratic(nn.Module):
    """Output w; with the loss ½ (w − w*)ᵀ A (w − w*) the minimizer is w* and the Hessian is A."""

    def __init__(self, w: torch.Tensor):
        super().__init__()
        self.w = nn.Parameter(w.clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w.expand(len(x), -1)


def quadratic_loss(a: torch.Tensor, target: torch.Tensor):
    def loss(out: torch.Tensor, _y: torch.Tensor) -> torch.Tensor:
        d = out[0] - target
        return 0.5 * d @ a @ d

    return loss


def setup(a: torch.Tensor, w_star: torch.Tensor) -> FlatLoss:
    net = Quadratic(w_star)  # at its minimizer: L(w*) = 0
    return FlatLoss(net, quadratic_loss(a, w_star), torch.zeros(4, 1), torch.zeros(4))


def test_box_maximum_of_a_diagonal_quadratic_matches_the_closed_form():
    """At the minimizer w* the box is |y_i| ≤ ε(|w*_i| + 1); ½ yᵀ diag(a) y peaks at a corner:
    φ = 100 · ½ Σ a_i ε² (|w*_i| + 1)² / (1 + 0)."""
    a = torch.tensor([4.0, 1.0, 0.25], dtype=torch.float64)
    w_star = torch.tensor([0.5, -2.0, 0.0], dtype=torch.float64)
    eps = 1e-3
    exact = 100 * 0.5 * float((a * (eps * (w_star.abs() + 1)) ** 2).sum())
    f = setup(torch.diag(a), w_star)
    assert abs(sign_ascent_sharpness(f, eps) - exact) < 1e-6 * max(1.0, exact) + 1e-12
    assert abs(keskar_sharpness(f, eps, iters=50) - exact) < 1e-3 * exact  # L-BFGS-B with enough iterations


def test_sign_ascent_reaches_the_box_corner_that_few_lbfgsb_iterations_may_fall_short_of():
    a = torch.tensor([1e-3, 2e-3, 5.0], dtype=torch.float64)  # two nearly flat directions, one sharp
    w_star = torch.zeros(3, dtype=torch.float64)
    exact = 100 * 0.5 * float((a * 1e-6).sum())
    f = setup(torch.diag(a), w_star)
    ascent, lbfgsb = sign_ascent_sharpness(f, 1e-3), keskar_sharpness(f, 1e-3, iters=10)
    assert abs(ascent - exact) < 1e-9 and 0 <= lbfgsb <= ascent + 1e-12


def test_power_iteration_finds_the_top_eigenvalue_of_a_known_matrix():
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.normal(size=(6, 6)))
    eigenvalues = np.array([9.0, 3.0, 2.0, 1.0, 0.5, 0.1])
    a = torch.tensor(q @ np.diag(eigenvalues) @ q.T)
    f = setup(a, torch.tensor(rng.normal(size=6)))
    assert abs(top_hessian_eigenvalue(f, iters=200, tol=1e-10) - 9.0) < 1e-3


def test_probe_callback_writes_sharpness_into_the_run_metrics(train_run):
    _, record = train_run(
        "data=moons",
        "model.hidden=[16]",
        "callbacks.sharpness.enabled=true",
        "callbacks.sharpness.lbfgs_iters=3",
        "callbacks.sharpness.ascent_steps=5",
        "callbacks.sharpness.hessian_iters=5",
    )
    assert record["sharpness/sign_ascent"] > 0 and record["sharpness/keskar"] >= 0 and record["sharpness/train_loss"] > 0
    assert record["sharpness/hessian_top"] > 0  # a trained net's loss curves upward somewhere


def test_training_stops_at_the_target_training_accuracy(train_run):
    _, record = train_run("callbacks.stop_at_train_acc=0.9", "trainer.max_epochs=50")
    assert 1 <= record["epochs"] < 50
