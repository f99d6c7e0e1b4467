"""The vectorized ensemble and the bias-variance estimators."""

from __future__ import annotations

import pytest
import torch

from lightning_modules.optimizers import OPTIMIZERS, optimizer_factory
from numerics import decomposition as dec
from numerics.ensemble import GroupedMLP, predict, train_ensemble

ELEMENTWISE = [e.name for e in OPTIMIZERS if e.info.get("elementwise")]


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_grouped_members_equal_separately_trained_members(name):
    """With every optimizer the registry declares elementwise (weight decay on), each member of the
    vectorized ensemble ends exactly where it would have trained alone."""
    make = optimizer_factory(name, lr=1.0 if name == "adadelta" else 1e-2, weight_decay=1e-2)
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(3, 64, 5, generator=g), torch.randint(0, 4, (3, 64), generator=g)
    together = train_ensemble(x, y, [11, 12, 13], [16], 4, "classification", epochs=5, batch_size=16, make_optimizer=make)
    probe = torch.randn(10, 5, generator=g)
    for i, seed in enumerate([11, 12, 13]):
        alone = train_ensemble(x[i : i + 1], y[i : i + 1], [seed], [16], 4, "classification", 5, 16, make)
        assert torch.allclose(predict(together.net, probe)[i], predict(alone.net, probe)[0], atol=1e-5)
    assert together.train_loss[-1] < together.train_loss[0]


def test_weight_decay_reaches_the_weights_only():
    net = GroupedMLP([0, 1], 3, [8], 2)
    groups = optimizer_factory("sgd", lr=0.1, weight_decay=0.5)(net).param_groups
    decayed = {id(p) for g in groups if g["weight_decay"] for p in g["params"]}
    assert decayed == {id(layer.weight) for layer in net.layers}


def test_member_extraction_matches_the_grouped_forward():
    net = GroupedMLP([0, 1], 3, [8, 8], 2)
    x = torch.randn(5, 3)
    assert torch.allclose(net.member(1)(x), predict(net, x)[1], atol=1e-6)


def test_regression_estimator_recovers_a_known_bias_and_variance():
    g = torch.Generator().manual_seed(0)
    truth = torch.randn(2000, 1, generator=g)
    preds = truth + 0.5 + 0.2 * torch.randn(4000, 2000, 1, generator=g)  # bias 0.5, std 0.2
    parts = dec.regression(preds, truth)
    assert abs(parts["bias2"] - 0.25) < 1e-3 and abs(parts["variance"] - 0.04) < 1e-3


def test_classification_decompositions_add_up_and_vanish_for_identical_members():
    g = torch.Generator().manual_seed(0)
    log_probs = torch.log_softmax(torch.randn(6, 50, 4, generator=g), -1)
    y = torch.randint(0, 4, (50,), generator=g)
    mse, ce = dec.classification_mse(log_probs.exp(), y), dec.classification_ce(log_probs, y)
    assert abs(mse["risk"] - mse["bias2"] - mse["variance"]) < 1e-6
    assert abs(ce["risk"] - ce["bias"] - ce["variance"]) < 1e-5
    same = log_probs[:1].expand(6, -1, -1)
    assert dec.classification_mse(same.exp(), y)["variance"] < 1e-12 and abs(dec.classification_ce(same, y)["variance"]) < 1e-6
