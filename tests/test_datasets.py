"""Every dataset loads with the right shapes, dtypes and classes (file formats from the tiny examples
each entry declares, written in their exact formats); K-fold and bootstrap; bad inputs give errors
naming what is expected."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from core.errors import ConfigError
from core.registry import Entry
from datamodules.datasets import DATASETS, load, reads, root_kwargs
from datamodules.files import DataFileError
from datamodules.mixing import MixConfig
from datamodules.tensor_datamodule import TensorDataModule

KIND_AXES = {"tabular": 1, "image": 3, "signal": 2, "sequence": 2}  # axes of one sample


@pytest.fixture(scope="module")
def examples(tmp_path_factory):
    """The keyword arguments that load each dataset's declared example (``example=``: tiny files it
    writes in its exact format, or a scratch directory); ``{}`` for a dataset that declares none."""
    found = {}
    for entry in DATASETS:
        write = entry.info.get("example")
        found[entry.name] = write(tmp_path_factory.mktemp(entry.name)) if write else {}
    return found


@pytest.mark.parametrize("name", DATASETS.list())
def test_dataset_shapes_dtypes_and_classes(name, examples):
    """Every entry: its declared task and kind, float32 inputs of the kind's rank, labels or targets of
    the right dtype. With ``expect`` (the entry's own declaration): the exact shape, number of
    classes (every one present) or targets, and whether it comes with a test split."""
    entry = DATASETS.get(name)
    assert not reads(entry) or entry.info.get("example"), f"dataset {name!r} reads files: declare example= so its tests can load it"
    ds = load(name, **examples[name])
    assert (ds.task, ds.kind, ds.x.dtype.name) == (entry.info["task"], entry.info["kind"], "float32")
    assert len(ds.input_shape) == KIND_AXES[ds.kind] and len(ds.x) > 0
    if ds.task == "classification":
        assert ds.y.dtype.name == "int64" and ds.num_classes >= 2 and set(np.unique(ds.y)) <= set(range(ds.num_classes))
    else:
        assert ds.y.dtype.name == "float32" and ds.y.shape[1] >= 1
    expect = entry.info.get("expect")
    if expect is not None:
        assert (ds.input_shape, ds.x_test is not None) == (tuple(expect["shape"]), expect["test_split"])
        if ds.task == "classification":
            assert ds.num_classes == expect["outputs"] and set(np.unique(ds.y)) == set(range(expect["outputs"]))
        else:
            assert ds.y.shape[1] == expect["outputs"]


@pytest.mark.parametrize("name", [e.name for e in DATASETS if reads(e)])
def test_dataset_without_its_files_names_the_key(name):
    """A dataset that reads files, loaded without a path, is a one-line error naming the key it reads."""
    keys = "|".join(r"data\.root" if k == "root" else rf"data\.dataset\.{k}" for k in reads(DATASETS.get(name)))
    with pytest.raises(ConfigError, match=rf"^({keys}): missing"):
        load(name)


def test_data_root_is_taken_only_by_datasets_that_read_it():
    assert root_kwargs(DATASETS.get("mnist"), "/data/mnist") == {"root": "/data/mnist"} and root_kwargs(DATASETS.get("digits"), None) == {}
    readers = ", ".join(e.name for e in DATASETS if "root" in reads(e))
    assert {"mnist", "cifar10", "image_folder"} <= set(readers.split(", ")) and "digits" not in readers
    with pytest.raises(ConfigError) as refused:
        root_kwargs(DATASETS.get("digits"), "/tmp")
    assert str(refused.value) == f"data.root='/tmp': dataset 'digits' does not read files; data.root is read by: {readers}"
    table = Entry("table", lambda path=None: None, {"task": "regression", "kind": "tabular", "accepts": ("path",), "reads": ("path",)})
    with pytest.raises(ConfigError) as refused:  # it reads a file, from another key: not "does not read files"
        root_kwargs(table, "/tmp/t.csv")
    assert str(refused.value) == (
        "data.root='/tmp/t.csv': dataset 'table' reads its files from data.dataset.path, not data.root; set data.dataset.path "
        f"(data.root is read by: {readers})"
    )


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
        ({"kfold": {"k": 3, "index": 3}, "val_fraction": 0.0}, r"data.kfold.index=3: must be < data.kfold.k=3"),
        ({"kfold": {"k": 3}, "val_fraction": 0.1}, r"data.val_fraction=0.1: with data.kfold.k=3 the fold is the validation set"),
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


def test_file_dataset_trains_from_the_config(examples, train_run):
    _, record = train_run(
        "data=cifar10",
        f"data.root={examples['cifar10']['root']}",
        "regularization=cutmix",
        "regularization.augment=true",
        "trainer.max_epochs=2",
    )
    assert 0.0 <= record["test/acc"] <= 1.0 and record["epochs"] == 2


def test_kfold_alone_makes_the_fold_the_validation_set():
    """data.kfold.k alone: the validation fraction (null by default) becomes 0 and the fold validates;
    without K-fold null is 0.1. The resolved value is what the run's saved config shows."""
    from conftest import compose_config
    from experiments.preflight import preflight

    dm = TensorDataModule("digits", kfold={"k": 3, "index": 1})
    dm.setup("fit")
    sizes = dm.split_sizes()
    assert abs(sizes["val"] - sizes["train"] / 2) <= 2  # a third of the pool validates, two thirds train
    cfg = compose_config("data.kfold.k=5")
    preflight(cfg)
    assert cfg.data.val_fraction == 0.0
    cfg = compose_config()
    preflight(cfg)
    assert cfg.data.val_fraction == 0.1
