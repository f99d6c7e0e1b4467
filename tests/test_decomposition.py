"""numerics/decomposition.py: the bias-variance estimators of study=bias_variance against known answers."""

from __future__ import annotations

import math

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


def test_a_paired_interval_sees_what_two_unpaired_ones_hide():
    """Seed effects shared by both arms cancel in the per-seed differences: closed-form values."""
    from numerics.intervals import direction, interval, paired

    seed_effect = {0: 0.80, 1: 0.90, 2: 0.85, 3: 0.95}
    a = {s: v + 0.02 + (0.001 if s % 2 else -0.001) for s, v in seed_effect.items()}  # 2 points better on every seed
    mean, half, n = paired(a, seed_effect)
    assert n == 4 and abs(mean - 0.02) < 1e-12
    assert abs(half - 3.182446305284263 * (2 * 0.001 / math.sqrt(3)) / 2) < 1e-9  # t(0.975, 3) · s / √n, s = 0.002/√3
    assert direction(mean, half, n) == 1 and direction(-mean, half, n) == -1 and direction(mean, 0.05, n) == 0
    ma, _, ha = interval(a.values())
    mb, _, hb = interval(seed_effect.values())
    assert abs(ma - mb) < ha + hb  # unpaired, the two intervals overlap
    assert paired({0: 1.0, 5: 2.0}, {5: 1.5, 7: 0.0}) == (0.5, 0.0, 1) and direction(0.5, 0.0, 1) == 0  # one seed in common
