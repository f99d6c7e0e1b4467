"""Every dataset loads with the right shapes, dtypes and classes (file formats from fixtures written
here in their exact formats); K-fold and bootstrap; bad inputs give errors naming what is expected."""

from __future__ import annotations

import gzip
import pickle
import struct

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from datamodules.datasets import DATASETS, load
from datamodules.files import DataFileError
from datamodules.mixing import MixConfig
from datamodules.tensor_datamodule import TensorDataModule

EXPECTED = {  # name: (input shape, task, classes or targets, has its own test split)
    "digits": ((1, 8, 8), "classification", 10, False),
    "moons": ((2,), "classification", 2, False),
    "circles": ((2,), "classification", 2, False),
    "regression_outliers": ((1,), "regression", 1, True),
    "sequences": ((50, 2), "regression", 1, False),
    "mnist1d": ((1, 40), "classification", 10, True),
    "mnist": ((1, 28, 28), "classification", 10, True),
    "fashion_mnist": ((1, 28, 28), "classification", 10, True),
    "cifar10": ((3, 32, 32), "classification", 10, True),
    "cifar100": ((3, 32, 32), "classification", 100, True),
    "image_folder": ((3, 6, 5), "classification", 3, False),
}


def write_idx(path, array: np.ndarray, gz: bool):
    raw = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape) + array.astype(np.uint8).tobytes()
    (gzip.open if gz else open)(str(path) + (".gz" if gz else ""), "wb").write(raw)


@pytest.fixture(scope="module")
def fixtures(tmp_path_factory):
    """Tiny files in each standard format."""
    root = tmp_path_factory.mktemp("data")
    rng = np.random.default_rng(0)
    for name, gz in (("mnist", True), ("fashion_mnist", False)):
        d = root / name
        d.mkdir()
        for prefix, n in (("train", 30), ("t10k", 10)):
            write_idx(d / f"{prefix}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28)), gz)
            write_idx(d / f"{prefix}-labels-idx1-ubyte", np.arange(n) % 10, gz)
    c10 = root / "cifar10" / "cifar-10-batches-py"
    c10.mkdir(parents=True)
    for b in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        pickle.dump({b"data": rng.integers(0, 256, (20, 3072), dtype=np.uint8), b"labels": list(np.arange(20) % 10)}, open(c10 / b, "wb"))
    c100 = root / "cifar100"
    c100.mkdir()
    for b in ("train", "test"):
        pickle.dump(
            {b"data": rng.integers(0, 256, (200, 3072), dtype=np.uint8), b"fine_labels": list(np.arange(200) % 100)}, open(c100 / b, "wb")
        )
    from PIL import Image

    for cls in ("ant", "bee", "cat"):
        (root / "images" / cls).mkdir(parents=True)
        for i in range(4):
            Image.fromarray(rng.integers(0, 256, (6, 5, 3), dtype=np.uint8)).save(root / "images" / cls / f"{i}.png")
    return {
        "mnist": root / "mnist",
        "fashion_mnist": root / "fashion_mnist",
        "cifar10": root / "cifar10",
        "cifar100": root / "cifar100",
        "image_folder": root / "images",
    }


def test_expectations_cover_the_registry():
    assert sorted(EXPECTED) == DATASETS.list()


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_dataset_shapes_dtypes_and_classes(name, fixtures, tmp_path):
    kwargs = {"root": str(fixtures[name])} if name in fixtures else {}
    if name == "mnist1d":
        kwargs["cache_dir"] = str(tmp_path)
    ds = load(name, **kwargs)
    shape, task, outputs, has_test = EXPECTED[name]
    assert (ds.input_shape, ds.task, ds.x.dtype.name) == (shape, task, "float32")
    assert (ds.x_test is not None) == has_test
    if task == "classification":
        assert ds.num_classes == outputs and ds.y.dtype.name == "int64" and set(np.unique(ds.y)) == set(range(outputs))
    else:
        assert ds.y.shape[1] == outputs and ds.y.dtype.name == "float32"


def test_mnist1d_is_cached_and_matches_the_published_split(tmp_path):
    first = load("mnist1d", cache_dir=str(tmp_path))
    assert len(list(tmp_path.glob("mnist1d_*.npz"))) == 1 and (len(first.x), len(first.x_test)) == (4000, 1000)
    again = load("mnist1d", cache_dir=str(tmp_path), as_sequence=True)
    assert again.input_shape == (40, 1) and np.array_equal(again.x[:, :, 0], first.x[:, 0, :])


def test_regression_outliers_truth_and_clean_test_set():
    ds = load("regression_outliers", noise=0.1, outlier_fraction=0.2)
    truth = ds.extras["truth"]
    resid = np.abs(ds.y - truth(ds.x))[:, 0]
    outliers = ds.extras["outliers"]
    assert 60 < len(outliers) < 140 and resid[outliers].min() > 0.6 and np.median(np.delete(resid, outliers)) < 0.1
    assert np.abs(ds.y_test - truth(ds.x_test)).max() < 0.6  # Gaussian noise only


def test_adding_problem_targets_are_the_marked_sums():
    ds = load("sequences", n_samples=20, length=10)
    assert np.allclose((ds.x[:, :, 0] * ds.x[:, :, 1]).sum(1), ds.y[:, 0]) and (ds.x[:, :, 1].sum(1) == 2).all()


@pytest.mark.parametrize(
    "name,setup,message",
    [
        ("mnist", lambda r: None, r"data.root: missing; dataset 'mnist' reads local files laid out as data.root/\{train,t10k\}"),
        ("mnist", lambda r: r, r"train-images-idx3-ubyte: missing \(expected layout: data.root/"),
        (
            "mnist",
            lambda r: ((r / "train-images-idx3-ubyte").write_bytes(b"\x00\x00\x0d\x03garbage"), r)[1],
            r"not an IDX file of unsigned bytes",
        ),
        ("cifar10", lambda r: ((r / "data_batch_1").write_bytes(b"not a pickle"), r)[1], r"data_batch_1: not a CIFAR python batch"),
        ("image_folder", lambda r: (r / "only").mkdir() or r, r"found 1 class folders; image_folder expects data.root/<class>/<image>"),
    ],
)
def test_bad_files_name_what_is_expected(name, setup, message, tmp_path):
    root = setup(tmp_path)
    with pytest.raises(DataFileError, match=message):
        load(name, root=None if root is None else str(root))


def test_kfold_partitions_the_pool_and_never_touches_test():
    folds = [TensorDataModule("digits", val_fraction=0.0, kfold={"k": 5, "index": i}) for i in range(5)]
    for dm in folds:
        dm.arrays("train")
    vals = [set(dm.split_indices["val"]) for dm in folds]
    pool = set(folds[0].split_indices["train"]) | vals[0]
    assert sum(len(v) for v in vals) == len(pool) == 1797 - 360 and set().union(*vals) == pool
    assert all(set(dm.split_indices["test"]) == set(folds[0].split_indices["test"]) for dm in folds)
    assert all(not (set(dm.split_indices["train"]) & set(dm.split_indices["val"])) for dm in folds)


def test_bootstrap_is_seeded_same_size_with_out_of_bag():
    a, b, c = (TensorDataModule("digits", bootstrap=s) for s in (1, 1, 2))
    for dm in (a, b, c):
        dm.arrays("train")
    plain = TensorDataModule("digits")
    plain.arrays("train")
    assert len(a.split_indices["train"]) == len(plain.split_indices["train"]) == 1257
    assert np.array_equal(a.split_indices["train"], b.split_indices["train"]) and not np.array_equal(
        a.split_indices["train"], c.split_indices["train"]
    )
    drawn = set(a.split_indices["train"])
    assert len(drawn) < 1257 and drawn | set(a.oob_indices) == set(plain.split_indices["train"]) and not drawn & set(a.oob_indices)
    assert 0.3 < len(a.oob_indices) / 1257 < 0.42  # ≈ 1/e of the samples are never drawn


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"kfold": {"k": 1}, "val_fraction": 0.0}, r"data.kfold.k=1: must be an integer >= 2"),
        ({"kfold": {"k": 3, "index": 3}, "val_fraction": 0.0}, r"data.kfold.index=3: must be an integer in \[0, 2\] for k=3"),
        ({"kfold": {"k": 3}}, r"data.val_fraction=0.1: with data.kfold.k=3 the fold is the validation set"),
        ({"root": "/tmp"}, r"data.root='/tmp': dataset 'digits' does not read files"),
    ],
)
def test_datamodule_rejects_bad_resampling(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TensorDataModule("digits", **kwargs)


def test_dataloader_path_trains_and_mixes_per_batch(train_run):
    run_dir, record = train_run("data.loader=dataloader", "regularization.mixup_alpha=0.2", "trainer.max_epochs=3")
    assert record["test/acc"] > 0.85
    dm = TensorDataModule("digits", loader="dataloader", mix=MixConfig(mixup_alpha=1.0))
    dm.setup()
    assert isinstance(dm.train_dataloader(), DataLoader) and not dm.on_device
    x, y = next(iter(dm.train_dataloader()))
    dm.trainer = type("T", (), {"training": True, "global_step": 3, "global_rank": 0})()
    xm, t = dm.on_after_batch_transfer((x.clone(), y), 0)
    assert t.shape == (64, 10) and not torch.equal(xm, x)
    dm.trainer.training = False
    assert dm.on_after_batch_transfer((x, y), 0)[1] is y  # never at evaluation


def test_auto_loader_picks_by_size_and_workers():
    assert TensorDataModule("digits").on_device
    assert not TensorDataModule("digits", device_limit_mb=0.1).on_device  # 1257 × 64 floats = 0.31 MB
    assert not TensorDataModule("digits", num_workers=2).on_device
    with pytest.raises(ValueError, match=r"data.num_workers=2: workers serve data.loader=dataloader"):
        TensorDataModule("digits", loader="device", num_workers=2)


def test_file_dataset_trains_from_the_config(fixtures, train_run):
    _, record = train_run(
        "data=cifar10", f"data.root={fixtures['cifar10']}", "regularization=cutmix", "regularization.augment=true", "trainer.max_epochs=2"
    )
    assert 0.0 <= record["test/acc"] <= 1.0 and record["epochs"] == 2
