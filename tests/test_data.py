"""Device loader, splits, normalization and the tensor DataModule."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from datamodules.device_loader import DeviceBatchLoader, EpochPermutation
from datamodules.normalization import apply_normalizer, fit_normalizer
from datamodules.splits import holdout_split
from datamodules.tensor_datamodule import TensorDataModule


def test_loader_covers_every_sample_once_per_epoch_in_batches():
    x = torch.arange(10).float()[:, None]
    loader = DeviceBatchLoader((x, torch.arange(10)), batch_size=4, shuffle=True, seed=3)
    batches = list(loader)
    assert len(loader) == len(batches) == 3 and [len(b[1]) for b in batches] == [4, 4, 2]
    ys = torch.cat([b[1] for b in batches])
    assert sorted(ys.tolist()) == list(range(10))
    assert torch.equal(torch.cat([b[0] for b in batches])[:, 0].long(), ys)  # x and y stay paired


def test_loader_order_depends_only_on_seed_and_epoch():
    def order(seed, epoch):
        loader = DeviceBatchLoader((torch.arange(50),), batch_size=50, shuffle=True, seed=seed)
        loader.sampler.set_epoch(epoch)
        return next(iter(loader))[0].tolist()

    assert order(0, 1) == order(0, 1)
    assert order(0, 1) != order(0, 2) and order(0, 1) != order(1, 1)
    unshuffled = DeviceBatchLoader((torch.arange(5),), batch_size=2, shuffle=False)
    assert torch.cat([b[0] for b in unshuffled]).tolist() == [0, 1, 2, 3, 4]


def test_shards_are_equal_sized_and_cover_the_epoch():
    shards = [EpochPermutation(10, shuffle=True, seed=0, rank=r, world_size=3) for r in range(3)]
    parts = [s.indices().tolist() for s in shards]
    assert [len(p) for p in parts] == [4, 4, 4]
    assert set(sum(parts, [])) == set(range(10))  # 2 samples repeated as padding, none lost


def test_holdout_split_is_disjoint_stratified_and_seeded():
    y = np.repeat(np.arange(4), [100, 50, 30, 20])
    train, val, test = holdout_split(len(y), 0.1, 0.2, seed=0, labels=y)
    assert len(set(train) | set(val) | set(test)) == len(y) == len(train) + len(val) + len(test)
    assert (len(val), len(test)) == (20, 40)
    assert np.bincount(y[test]).tolist() == [20, 10, 6, 4]  # class proportions kept
    assert all(np.array_equal(a, b) for a, b in zip((train, val, test), holdout_split(len(y), 0.1, 0.2, 0, y)))
    assert not np.array_equal(test, holdout_split(len(y), 0.1, 0.2, 1, y)[2])


def test_stratified_split_too_small_for_the_classes_names_the_key():
    y = np.repeat(np.arange(100), 4)
    with pytest.raises(
        ValueError, match=r"data.val_fraction=0.1: 40 of 400 samples cannot hold all 100 classes in a stratified split; raise it to >= 0.25"
    ):
        holdout_split(len(y), 0.1, 0.0, seed=0, labels=y)


def test_zscore_uses_training_statistics_and_leaves_constant_features():
    x = np.stack([np.array([1.0, 2.0, 3.0, 4.0]), np.full(4, 5.0)], axis=1).astype(np.float32)
    shift, scale = fit_normalizer(x, "zscore")
    z = apply_normalizer(x, shift, scale)
    assert z[:, 0].mean() == pytest.approx(0, abs=1e-6) and z[:, 0].std() == pytest.approx(1)
    assert np.all(z[:, 1] == 0)
    lo, span = fit_normalizer(x, "minmax")
    assert apply_normalizer(x, lo, span)[:, 0].tolist() == pytest.approx([0, 1 / 3, 2 / 3, 1])


def test_digits_datamodule_splits_and_normalizes_from_train_only():
    dm = TensorDataModule("digits", val_fraction=0.1, test_fraction=0.2)
    assert dm.split_sizes() == {"train": 1257, "val": 180, "test": 360}
    assert (dm.task, dm.input_shape, dm.num_outputs) == ("classification", (1, 8, 8), 10)
    dm.setup("fit")
    x_train = dm.tensors("train")[0]
    assert abs(x_train.mean()) < 1e-5 and abs(x_train.std() - 1) < 1e-3  # per-channel z-score (images: one channel)
    assert x_train.mean(0).abs().max() > 0.5  # not per pixel
    raw, idx = dm.info.x, dm.split_indices
    expected = (raw[idx["test"]] - raw[idx["train"]].mean()) / raw[idx["train"]].std()  # the training split's statistics
    assert np.allclose(dm.tensors("test")[0].numpy(), expected, atol=1e-4)
    batch = next(iter(dm.train_dataloader()))
    assert batch[0].shape == (64, 1, 8, 8) and batch[1].dtype == torch.int64
    per_pixel = TensorDataModule("digits", normalize_per="feature")
    per_pixel.setup("fit")
    assert per_pixel.tensors("train")[0].mean(0).abs().max() < 1e-5


def test_normalization_axes_by_kind():
    from datamodules.normalization import reduce_axes

    assert reduce_axes("image", "auto", 4) == (0, 2, 3) and reduce_axes("signal", "auto", 3) == (0, 2)
    assert reduce_axes("tabular", "auto", 2) == (0,) and reduce_axes("sequence", "auto", 3) == (0, 1)
    x = np.random.default_rng(0).normal(3.0, 2.0, size=(100, 2, 40)).astype(np.float32)
    shift, scale = fit_normalizer(x, "zscore", reduce_axes("signal", "auto", 3))
    assert shift.shape == (2, 1) and np.allclose(apply_normalizer(x, shift, scale).std(axis=(0, 2)), 1, atol=1e-4)
    with pytest.raises(ValueError, match="data.normalize_per=channel: tabular data has no channels; use feature or auto"):
        reduce_axes("tabular", "channel", 2)


def test_datamodule_rejects_bad_values_by_key():
    """The constructor applies the same rules, with the same one-line messages, as the config check (datamodules/rules.py)."""
    with pytest.raises(ValueError, match=r"data.normalize='l2': must be one of zscore, minmax, none"):
        TensorDataModule("digits", normalize="l2")
    with pytest.raises(ValueError, match=r"data.batch_size=0: must be an integer >= 1"):
        TensorDataModule("digits", batch_size=0)
