"""The loss-landscape probe (numerics/landscape.py, callbacks/landscape.py): filter normalization,
the loss along a line and on a plane equal to their closed forms for a linear model, the
interpolation's ends, then the probe in a run and its refusals."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from numerics.landscape import Surface, filter_normalized_direction, weights_of


def test_a_filter_normalized_direction_has_each_filter_s_norm_and_no_bias_or_norm_component():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv1d(2, 4, 3), nn.BatchNorm1d(4), nn.Flatten(), nn.Linear(4 * 6, 3))
    w = weights_of(net)
    d = filter_normalized_direction(w, seed=1)
    conv, linear = d["0.weight"], d["3.weight"]
    assert torch.allclose(conv.flatten(1).norm(dim=1), w["0.weight"].flatten(1).norm(dim=1), rtol=1e-5)
    assert torch.allclose(linear.norm(dim=1), w["3.weight"].norm(dim=1), rtol=1e-5)
    assert all(not d[k].any() for k in ("0.bias", "1.weight", "1.bias", "3.bias"))  # biases and batch norm: zero
    assert torch.equal(d["3.weight"], filter_normalized_direction(w, seed=1)["3.weight"])  # seeded


def linear_problem():
    torch.manual_seed(0)
    net = nn.Linear(3, 1).double()
    x, y = torch.randn(40, 3, dtype=torch.float64), torch.randn(40, 1, dtype=torch.float64)
    return net, x, y


def closed_form(net, x, y, coeffs, directions):
    """mean((x (W + Σ c_j D_j)ᵀ + b − y)²) in numpy."""
    W, b = net.weight.detach().numpy(), net.bias.detach().numpy()
    X, Y = x.numpy(), y.numpy()
    out = []
    for c in coeffs:
        Wc = W + sum(cj * D["weight"].numpy() for cj, D in zip(c, directions))
        out.append(np.mean((X @ Wc.T + b - Y) ** 2))
    return np.array(out)


def test_line_and_plane_equal_the_closed_form_of_a_linear_model():
    net, x, y = linear_problem()
    w = weights_of(net)
    d1, d2 = filter_normalized_direction(w, 0), filter_normalized_direction(w, 1)
    surface = Surface(net, nn.functional.mse_loss, x, y, chunk=7)  # six chunks: the sum over them is tested too
    alphas = np.linspace(-1, 1, 5)
    losses, accs = surface.line(w, d1, alphas)
    assert accs is None and np.allclose(losses, closed_form(net, x, y, alphas[:, None], [d1]), rtol=1e-12)
    grid, _ = surface.plane(w, d1, d2, alphas)
    a, b = np.meshgrid(alphas, alphas)
    expected = closed_form(net, x, y, np.stack([a.ravel(), b.ravel()], 1), [d1, d2]).reshape(5, 5)
    assert np.allclose(grid, expected, rtol=1e-12) and grid[2, 2] == pytest.approx(float(nn.functional.mse_loss(net(x), y).detach()))


def test_interpolation_passes_through_both_networks():
    net, x, y = linear_problem()
    other = nn.Linear(3, 1).double()
    surface = Surface(net, nn.functional.mse_loss, x, y)
    losses, _ = surface.between(weights_of(net), weights_of(other), np.array([0.0, 0.5, 1.0]))
    with torch.no_grad():
        assert losses[0] == pytest.approx(float(nn.functional.mse_loss(net(x), y)))
        assert losses[2] == pytest.approx(float(nn.functional.mse_loss(other(x), y)))


def test_probe_in_a_run_writes_the_curves_figures_and_the_interpolation(train_run):
    first_dir, _ = train_run("data=moons", "model.hidden=[8]", name="first")
    args = ("data=moons", "model.hidden=[8]", "seed=1", "callbacks.figures=true", "callbacks.landscape.enabled=true")
    args += ("callbacks.landscape.points=5", f"callbacks.landscape.between={first_dir}")
    run_dir, record = train_run(*args, name="second")
    found = json.loads((run_dir / "landscape.json").read_text())
    assert found["alphas"] == [-1.0, -0.5, 0.0, 0.5, 1.0] and set(found["line"]) == {"train", "test"}
    assert np.array(found["plane"]["train"]["loss"]).shape == (5, 5)
    line = found["line"]["train"]["loss"]
    assert found["plane"]["train"]["loss"][2][2] == pytest.approx(line[2])  # both pass through the final weights
    assert record["landscape/train_loss_rise"] == pytest.approx(max(line[0], line[-1]) - line[2])
    assert found["between_alphas"][0] == -0.5 and found["between_alphas"][-1] == 1.5
    assert found["between"]["train"]["loss"][1] == pytest.approx(line[2], rel=1e-5)  # α = 0 is this run (a 0.5 step grid)
    for stem in ("landscape_1d", "landscape_2d", "landscape_between"):
        assert (run_dir / "figures" / f"{stem}.png").stat().st_size > 5000


def test_without_the_test_split_the_probe_uses_validation(train_run):
    run_dir, _ = train_run(
        "data=moons", "model.hidden=[8]", "run_test=false", "callbacks.landscape.enabled=true", "callbacks.landscape.points=3"
    )
    found = json.loads((run_dir / "landscape.json").read_text())
    assert set(found["line"]) == {"train", "val"} and set(found["plane"]) == {"train", "val"}


def test_probe_settings_it_cannot_use_are_refused(cli, train_run, tmp_path):
    other, _ = train_run("data=moons", "model.hidden=[8]", name="other")
    cases = [
        (("callbacks.landscape.points=2",), "error: callbacks.landscape.points=2: must be an odd integer >= 3 (α = 0 is a point)"),
        (("callbacks.landscape.points=4",), "error: callbacks.landscape.points=4: must be an odd integer >= 3"),
        (
            ("callbacks.landscape.enabled=true", "seeds=[0,1]"),
            "error: callbacks.landscape.enabled=true with seeds=[0, 1]: the landscape is drawn for one network; train one seed",
        ),
        (("callbacks.landscape.span=0",), "error: callbacks.landscape.span=0: must be a number > 0"),
        (
            ("data=moons", "model.hidden=[16]", "callbacks.landscape.enabled=true", f"callbacks.landscape.between={other}"),
            f"error: callbacks.landscape.between={other}: its network differs from this run's (",
        ),
        (
            ("callbacks.landscape.enabled=true", f"callbacks.landscape.between={tmp_path / 'nothing'}"),
            f"error: callbacks.landscape.between={tmp_path / 'nothing'}: not a run directory with a checkpoint",
        ),
        (("model=vae", "callbacks.landscape.enabled=true"), "error: callbacks.landscape.enabled=true: the landscape probes need a"),
    ]
    for args, message in cases:
        code, _, err = cli(*args, "trainer.max_epochs=1", cwd=tmp_path)
        assert code == 2 and err.strip().startswith(message), err
    assert not (tmp_path / "outputs").exists()
