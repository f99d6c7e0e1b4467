"""Mixup/CutMix and augmentation: soft labels, the pixel fraction, Beta means, off at α = 0, and
nothing at evaluation."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from datamodules.augment import augment, policy_for, random_translate
from datamodules.mixing import MixConfig, cutmix_box, draw_batches, mix_epoch
from datamodules.tensor_datamodule import TensorDataModule


def batch(shape=(64, 1, 8, 8), classes=10):
    g = torch.Generator().manual_seed(0)
    return torch.randn(*shape, generator=g), torch.randint(0, classes, (shape[0],), generator=g)


def mixed(cfg: MixConfig, shape=(64, 1, 8, 8), batch_size=16, seed=0):
    x, y = batch(shape)
    draws = draw_batches(len(y), batch_size, tuple(shape[2:]), cfg, random.Random(seed))
    xm, t = mix_epoch(x, y, 10, draws)
    return x, y, xm, t, draws


@pytest.mark.parametrize(
    "cfg", [MixConfig(mixup_alpha=0.4), MixConfig(cutmix_alpha=1.0), MixConfig(0.4, 1.0, switch_prob=0.5)], ids=["mixup", "cutmix", "both"]
)
def test_soft_labels_sum_to_one_and_carry_lambda_per_batch(cfg):
    for seed in range(10):
        x, y, xm, t, draws = mixed(cfg, seed=seed)
        assert xm.shape == x.shape and t.shape == (64, 10) and torch.allclose(t.sum(1), torch.ones(64))
        for d in draws:
            rows = torch.arange(d["start"], d["stop"])
            pair = torch.arange(d["stop"] - 1, d["start"] - 1, -1)
            differ = y[rows] != y[pair]
            assert torch.allclose(t[rows, y[rows]][differ], torch.full((int(differ.sum()),), d["lam"]), atol=1e-6)


def test_cutmix_weight_equals_the_pixel_fraction():
    for seed in range(10):
        x, y, xm, t, draws = mixed(MixConfig(cutmix_alpha=1.0), shape=(32, 1, 16, 16), batch_size=8, seed=seed)
        kept = (xm == x).float().mean(dim=(1, 2, 3))  # fraction of each image that is its own
        own = torch.tensor([d["lam"] for d in draws for _ in range(d["start"], d["stop"])])
        assert all(d["kind"] == "cutmix" for d in draws) and torch.allclose(kept, own, atol=1e-6)


def test_cutmix_on_signals_cuts_a_segment():
    x, y, xm, t, draws = mixed(MixConfig(cutmix_alpha=1.0), shape=(8, 1, 40), batch_size=8, seed=1)
    changed = torch.nonzero((xm != x).any(dim=1)[0])[:, 0]  # positions of sample 0 that were replaced
    lo, hi = draws[0]["box"][0]
    assert changed.tolist() == list(range(lo, hi)) and draws[0]["lam"] == pytest.approx(1 - (hi - lo) / 40)


def test_box_is_clipped_and_lambda_recomputed():
    rng = random.Random(0)
    for _ in range(200):
        ((r0, r1), (c0, c1)), lam = cutmix_box((10, 10), rng.random(), rng)
        assert 0 <= r0 <= r1 <= 10 and 0 <= c0 <= c1 <= 10
        assert lam == pytest.approx(1 - (r1 - r0) * (c1 - c0) / 100)


@pytest.mark.parametrize("alpha", [0.2, 1.0])
def test_mean_lambda_matches_the_beta_mean(alpha):
    draws = draw_batches(64 * 3000, 64, (8, 8), MixConfig(mixup_alpha=alpha), random.Random(0))
    lams = [d["lam"] for d in draws]
    assert np.mean(lams) == pytest.approx(0.5, abs=0.02)  # Beta(α, α) has mean 1/2
    assert np.var(lams) == pytest.approx(1 / (4 * (2 * alpha + 1)), rel=0.1)


def test_disabled_at_alpha_zero_and_by_mix_prob():
    for cfg in (MixConfig(), MixConfig(mixup_alpha=1.0, mix_prob=0.0)):
        x, y, xm, t, draws = mixed(cfg)
        assert all(d["kind"] is None for d in draws) and torch.equal(xm, x) and torch.equal(t, F.one_hot(y, 10).float())


def test_label_smoothing_on_mixed_targets_equals_smoothing_then_mixing():
    logits, (a, b) = torch.randn(4, 5), (torch.tensor([0, 1, 2, 3]), torch.tensor([4, 3, 2, 1]))
    lam, eps = 0.3, 0.1
    mixed = lam * F.one_hot(a, 5).float() + (1 - lam) * F.one_hot(b, 5).float()
    timm_order = lam * F.cross_entropy(logits, a, label_smoothing=eps) + (1 - lam) * F.cross_entropy(logits, b, label_smoothing=eps)
    assert F.cross_entropy(logits, mixed, label_smoothing=eps).item() == pytest.approx(timm_order.item(), rel=1e-6)


def test_translation_moves_each_image_within_the_pad():
    x = torch.zeros(64, 1, 8, 8)
    x[:, :, 3, 4] = 1.0
    moved = random_translate(x, 1)
    pos = torch.nonzero(moved[:, 0])  # (64, 3): image, row, col
    assert len(pos) == 64 and ((pos[:, 1] - 3).abs() <= 1).all() and ((pos[:, 2] - 4).abs() <= 1).all()
    assert len({(r, c) for _, r, c in pos.tolist()}) > 4  # per-image offsets


def test_small_affine_keeps_the_image_near_itself_and_identity_is_exact():
    from datamodules.augment import affine_grid, random_affine

    theta = torch.randn(5, 2, 3)
    assert torch.allclose(affine_grid(theta, 6, 9), torch.nn.functional.affine_grid(theta, [5, 1, 6, 9], align_corners=False), atol=1e-5)

    x = torch.rand(32, 1, 28, 28)
    assert torch.allclose(random_affine(x, 0.0, 0.0), x, atol=1e-5)
    moved = random_affine(x, 10.0, 0.1)
    assert moved.shape == x.shape and not torch.allclose(moved, x)
    square = torch.zeros(1, 1, 28, 28)
    square[..., 10:18, 10:18] = 1.0
    out = random_affine(square.expand(16, 1, 28, 28).contiguous(), 10.0, 0.1)
    assert ((out.sum(dim=(1, 2, 3)) / 64) - 1).abs().max() < 0.25  # mass kept within the zoom range


def test_policies_by_kind():
    small, large = policy_for("image", (1, 8, 8), flip=False), policy_for("image", (3, 32, 32), flip=True)
    assert (small.flip, small.rotate, small.pad) == (False, 0.0, 1) and (large.flip, large.rotate, large.zoom, large.pad) == (
        True,
        10.0,
        0.1,
        4,
    )
    assert not torch.equal(augment(torch.rand(4, 3, 32, 32), large), torch.zeros(4, 3, 32, 32))
    x = torch.randn(8, 1, 40)
    out = augment(x, policy_for("signal", (1, 40), flip=False))
    assert out.shape == x.shape and not torch.equal(out, x)
    with pytest.raises(ValueError, match=r"regularization.augment=true: no label-preserving augmentation for tabular data"):
        policy_for("tabular", (2,), flip=False)


def test_augment_and_mix_run_in_training_only():
    dm = TensorDataModule("digits", augment=True, mix=MixConfig(mixup_alpha=1.0))
    dm.setup()
    train, val = dm.train_dataloader(), dm.val_dataloader()
    assert train.transform is not None and val.transform is None
    x_val, _ = next(iter(val))
    assert torch.equal(x_val, dm.tensors("val")[0][: len(x_val)])  # evaluation batches: untouched
    xb, tb = next(iter(train))
    raw = dm.tensors("train")[0][train.sampler.indices()[:64]]
    assert xb.shape == (64, 1, 8, 8) and not torch.equal(xb, raw) and tb.shape == (64, 10)
    assert torch.allclose(tb.sum(1), torch.ones(64))
