"""The Hessian probe (numerics/hessian.py, callbacks/hessian.py) against the exact Hessian of
networks small enough to form it (torch.autograd.functional.hessian): the top eigenvalues, the
trace within its standard error, the density's mass where the eigenvalues are; then the probe in
a run and in a seeds run, and its refusals."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from numerics.hessian import Hessian, hutchinson_trace, lanczos, spectral_density, top_eigenvalues
from numerics.sharpness import FlatLoss


def small_problem(seed: int = 0):
    """A tanh MLP (51 weights) on 50 points, in float64: its exact Hessian and eigenvalues."""
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 3)).double()
    x, y = torch.randn(50, 4, dtype=torch.float64), torch.randint(0, 3, (50,))
    f = FlatLoss(net, nn.functional.cross_entropy, x, y, chunk=16)  # 4 chunks: the sum over them is tested too
    exact = torch.autograd.functional.hessian(lambda w: f(w), f.w0)
    return f, exact, np.sort(torch.linalg.eigvalsh(exact).numpy())[::-1]


def test_hessian_vector_products_equal_the_exact_hessian_times_the_vector():
    f, exact, _ = small_problem()
    v = torch.randn(f.w0.numel(), dtype=torch.float64)
    assert torch.allclose(Hessian(f) @ v, exact @ v, rtol=1e-10, atol=1e-12)


def test_batch_norm_in_eval_mode_and_chunks_give_autograd_s_hessian_vector_product():
    torch.manual_seed(1)
    net = nn.Sequential(nn.Conv1d(1, 3, 5, padding=2), nn.BatchNorm1d(3), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 12, 4)).double()
    net(torch.randn(64, 1, 12, dtype=torch.float64))  # running statistics that are not 0 and 1
    net.eval()
    x, y = torch.randn(40, 1, 12, dtype=torch.float64), torch.randint(0, 4, (40,))
    f = FlatLoss(net, nn.functional.cross_entropy, x, y, chunk=7)
    v = torch.randn(f.w0.numel(), dtype=torch.float64)
    _, reference = torch.autograd.functional.hvp(lambda w: f(w), f.w0, v)
    assert torch.allclose(Hessian(f) @ v, reference, rtol=1e-9, atol=1e-12)


def test_top_eigenvalues_within_one_percent_of_the_exact_ones():
    f, _, exact = small_problem()
    top = top_eigenvalues(Hessian(f), 5, steps=20)  # 20 steps for 51 weights: the top converge first
    assert np.allclose(top, exact[:5], rtol=1e-2)
    assert top == sorted(top, reverse=True)


def test_hutchinson_trace_within_three_standard_errors():
    f, _, exact = small_problem()
    trace, se = hutchinson_trace(Hessian(f), 200)
    assert 0 < se < 0.2 * abs(exact.sum()) and abs(trace - exact.sum()) < 3 * se


def test_slq_density_integrates_to_one_and_sits_on_the_exact_eigenvalues():
    f, _, exact = small_problem()
    h = Hessian(f)
    theta, weights = lanczos(h, h.size)  # as many steps as weights: the Ritz values are the eigenvalues
    kept = theta[weights > 1e-10]
    assert weights.sum() == pytest.approx(1.0) and all(np.abs(exact - t).min() < 1e-8 for t in kept)
    sigma = 0.005
    grid, density, _ = spectral_density(h, runs=3, steps=h.size, sigma=sigma)
    assert np.trapezoid(density, grid) == pytest.approx(1.0, abs=1e-3)
    near = np.abs(grid[:, None] - exact[None, :]).min(1) <= 3 * sigma
    assert np.trapezoid(np.where(near, density, 0), grid) > 0.99  # the mass where the eigenvalues are
    # the density's mean is the mean of vᵀHv over the runs' unit vectors: tr(H)/P on average
    mean = np.trapezoid(grid * density, grid)
    assert mean == pytest.approx(exact.sum() / h.size, abs=0.5 * abs(exact).max())


def test_probe_in_a_run_writes_metrics_and_the_density_figure(train_run):
    run_dir, record = train_run(
        "data=moons",
        "model.hidden=[16]",
        "callbacks.figures=true",
        "callbacks.hessian.enabled=true",
        "callbacks.hessian.top_k=3",
        "callbacks.hessian.trace_samples=20",
        "callbacks.hessian.density_runs=2",
        "callbacks.hessian.density_steps=20",
    )
    tops = [record[f"hessian/top{i}"] for i in (1, 2, 3)]
    assert tops == sorted(tops, reverse=True) and tops[0] > 0 and "hessian/top4" not in record
    assert record["hessian/trace_se"] > 0 and record["hessian/trace"] > tops[0] - 3 * record["hessian/trace_se"]
    assert record["hessian/hvps"] == 30 + 20 + 2 * 20  # Lanczos for the top, Hutchinson, SLQ's runs: the cost in products
    assert (run_dir / "figures" / "hessian_density.png").stat().st_size > 5000
    assert json.loads((run_dir / "metrics.json").read_text())["hessian/top1"] == tops[0]


def test_each_member_of_a_seeds_run_is_probed_as_its_lone_run(train_run):
    probe = (
        "callbacks.hessian.enabled=true",
        "callbacks.hessian.max_samples=512",
        "callbacks.hessian.trace_samples=10",
        "trainer.max_epochs=2",
    )
    probe += (
        "callbacks.hessian.density_runs=1",
        "callbacks.hessian.density_steps=10",
        "callbacks.hessian.top_k=2",
        "callbacks.hessian.lanczos_steps=20",
    )
    _, record = train_run("seeds=[0,1]", *probe, name="members")
    _, alone = train_run("seed=1", *probe, name="alone")
    member = record["members"][1]
    assert member["hessian/top1"] == pytest.approx(alone["hessian/top1"], rel=1e-3)
    assert member["hessian/trace"] == pytest.approx(alone["hessian/trace"], rel=1e-3)


@pytest.mark.parametrize(
    "args, message",
    [
        (("callbacks.hessian.top_k=0",), "error: callbacks.hessian.top_k=0: must be an integer >= 1"),
        (
            ("callbacks.hessian.enabled=true", "callbacks.hessian.top_k=40"),
            "error: callbacks.hessian.lanczos_steps=30: must be >= 2 × callbacks.hessian.top_k=40",
        ),
        (("callbacks.hessian.trace_samples=1",), "error: callbacks.hessian.trace_samples=1: must be an integer >= 2"),
        (
            ("model=vae", "callbacks.hessian.enabled=true"),
            "error: callbacks.hessian.enabled=true: the hessian probes need a classifier or regressor, not the generative model 'vae'",
        ),
    ],
)
def test_probe_settings_it_cannot_use_are_refused(cli, tmp_path, args, message):
    code, _, err = cli(*args, cwd=tmp_path)
    assert code == 2 and err.strip().startswith(message), err
    assert not (tmp_path / "outputs").exists()
