"""numerics/decomposition.py: the bias-variance estimators of study=bias_variance against known answers."""

from __future__ import annotations

import torch

from numerics import decomposition as dec


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
