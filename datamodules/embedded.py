"""Datasets that ship with a package or are generated offline, registered by name.

Each loader returns an ``ArrayDataset``; generated sets are seeded (``data.dataset.seed``) so a
run is reproducible, and MNIST-1D is generated once and cached under ``data.cache_dir``. Each entry
declares, for its tests, what loading it with its defaults gives (``expect``: datamodules/datasets.py).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from core.errors import ConfigError
from core.files import replaced_atomically
from datamodules.datasets import DATASETS, ArrayDataset


@DATASETS.register(
    "digits", task="classification", kind="image", accepts=(), expect={"shape": (1, 8, 8), "outputs": 10, "test_split": False}
)
def digits() -> ArrayDataset:
    """scikit-learn's handwritten digits: 1,797 8×8 grey images (0–16), 10 classes; ships with sklearn."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = bunch.images.astype(np.float32)[:, None]  # (1797, 1, 8, 8)
    return ArrayDataset(x=x, y=bunch.target.astype(np.int64), task="classification", kind="image", num_classes=10)


def _toy(maker, n_samples: int, noise: float, seed: int, **kw) -> ArrayDataset:
    if n_samples < 10 or noise < 0:
        raise ConfigError(f"data.dataset.n_samples={n_samples}, noise={noise}: need n_samples >= 10 and noise >= 0")
    x, y = maker(n_samples=n_samples, noise=noise, random_state=seed, **kw)
    return ArrayDataset(x=x.astype(np.float32), y=y.astype(np.int64), task="classification", kind="tabular", num_classes=2)


@DATASETS.register(
    "moons",
    task="classification",
    kind="tabular",
    accepts=("n_samples", "noise", "seed"),
    expect={"shape": (2,), "outputs": 2, "test_split": False},
)
def moons(n_samples: int = 1000, noise: float = 0.2, seed: int = 0) -> ArrayDataset:
    """Two interleaving half circles in 2-D (scikit-learn's make_moons)."""
    from sklearn.datasets import make_moons

    return _toy(make_moons, n_samples, noise, seed)


@DATASETS.register(
    "circles",
    task="classification",
    kind="tabular",
    accepts=("n_samples", "noise", "factor", "seed"),
    expect={"shape": (2,), "outputs": 2, "test_split": False},
)
def circles(n_samples: int = 1000, noise: float = 0.1, factor: float = 0.5, seed: int = 0) -> ArrayDataset:
    """A small circle inside a large one in 2-D (scikit-learn's make_circles)."""
    from sklearn.datasets import make_circles

    if not 0 < factor < 1:
        raise ConfigError(f"data.dataset.factor={factor}: must be in (0, 1)")
    return _toy(make_circles, n_samples, noise, seed, factor=factor)


def regression_truth(x: np.ndarray) -> np.ndarray:
    """The ground truth of ``regression_outliers``: f(x) = Σ_i sin(x_i) + 0.1 Σ_i x_i², (N, d) → (N, 1)."""
    return (np.sin(x).sum(axis=1) + 0.1 * (x**2).sum(axis=1))[:, None].astype(np.float32)


@DATASETS.register(
    "regression_outliers",
    task="regression",
    kind="tabular",
    accepts=("n_samples", "n_test", "dim", "noise", "outlier_fraction", "outlier_scale", "outlier_side", "seed"),
    expect={"shape": (1,), "outputs": 1, "test_split": True},
)
def regression_outliers(
    n_samples: int = 500,
    n_test: int = 1000,
    dim: int = 1,
    noise: float = 0.3,
    outlier_fraction: float = 0.1,
    outlier_scale: float = 10.0,
    outlier_side: str = "both",
    seed: int = 0,
) -> ArrayDataset:
    """y = f(x) + N(0, noise²) with x ~ U(−3, 3)^dim; a fraction of the training targets get a gross
    error of outlier_scale × noise × (1 + U(0, 1)), of random sign (``outlier_side="both"``: the
    conditional mean stays where it is) or always upward (``"one"``: the mean moves, the median
    hardly). The same seed puts the outliers on the same points with the same sizes either way. The
    test set (``n_test``) has Gaussian noise only, and ``extras['truth']`` is f, so bias and variance
    can be measured against it."""
    if outlier_side not in ("one", "both"):
        raise ConfigError(f"data.dataset.outlier_side={outlier_side!r}: must be 'one' (every outlier above the truth) or 'both' (±)")
    if not (0 <= outlier_fraction < 1 and noise >= 0 and dim >= 1 and n_samples >= 10 and n_test >= 1):
        raise ConfigError(
            f"data.dataset: outlier_fraction={outlier_fraction} in [0, 1), noise={noise} >= 0, dim={dim} >= 1, "
            f"n_samples={n_samples} >= 10, n_test={n_test} >= 1"
        )
    rng = np.random.default_rng(seed)
    x = rng.uniform(-3, 3, (n_samples, dim)).astype(np.float32)
    y = regression_truth(x) + rng.normal(0, noise, (n_samples, 1)).astype(np.float32)
    bad = rng.random(n_samples) < outlier_fraction
    sign = rng.choice([-1.0, 1.0], bad.sum())  # drawn either way: "one" and "both" share the outliers' places and sizes
    y[bad, 0] += ((np.abs(sign) if outlier_side == "one" else sign) * outlier_scale * noise * (1 + rng.random(bad.sum()))).astype(
        np.float32
    )
    x_test = rng.uniform(-3, 3, (n_test, dim)).astype(np.float32)
    y_test = regression_truth(x_test) + rng.normal(0, noise, (n_test, 1)).astype(np.float32)
    return ArrayDataset(
        x=x,
        y=y,
        task="regression",
        kind="tabular",
        x_test=x_test,
        y_test=y_test,
        extras={"truth": regression_truth, "outliers": np.flatnonzero(bad)},
    )


@DATASETS.register(
    "sequences",
    task="regression",
    kind="sequence",
    accepts=("n_samples", "length", "seed"),
    expect={"shape": (50, 2), "outputs": 1, "test_split": False},
)
def sequences(n_samples: int = 4000, length: int = 50, seed: int = 0) -> ArrayDataset:
    """The adding problem (Hochreiter & Schmidhuber 1997): each step carries (value ~ U(0, 1),
    marker); exactly two markers are 1, one in each half; the target is the sum of the two marked
    values. Predicting the mean (1.0) gives MSE ≈ 0.167; solving it needs memory over ``length`` steps."""
    if length < 2 or n_samples < 10:
        raise ConfigError(f"data.dataset.length={length} >= 2 and n_samples={n_samples} >= 10 are needed")
    rng = np.random.default_rng(seed)
    values = rng.random((n_samples, length)).astype(np.float32)
    marks = np.zeros((n_samples, length), np.float32)
    half = length // 2
    first, second = rng.integers(0, half, n_samples), rng.integers(half, length, n_samples)
    rows = np.arange(n_samples)
    marks[rows, first] = marks[rows, second] = 1.0
    x = np.stack([values, marks], axis=2)  # (N, L, 2)
    y = (values[rows, first] + values[rows, second])[:, None]  # (N, 1)
    return ArrayDataset(x=x, y=y.astype(np.float32), task="regression", kind="sequence")


def default_cache_dir() -> Path:
    return Path(os.environ.get("DL_FOUNDATIONS_CACHE", Path.home() / ".cache" / "dl-foundations"))


def _scratch_cache(directory: Path) -> dict[str, str]:
    """MNIST-1D generated into a scratch cache (its tests never touch the user's)."""
    return {"cache_dir": str(directory)}


@DATASETS.register(
    "mnist1d",
    task="classification",
    kind="signal",
    accepts=("as_sequence", "seed", "cache_dir"),
    example=_scratch_cache,
    expect={"shape": (1, 40), "outputs": 10, "test_split": True},
)
def mnist1d(as_sequence: bool = False, seed: int = 42, cache_dir: str | None = None) -> ArrayDataset:
    """MNIST-1D (Greydanus 2020): 4,000 train / 1,000 test signals of length 40, 10 classes,
    generated locally by the mnist1d package (never downloaded) and cached as .npz.
    ``as_sequence``: (40, 1) sequences for recurrent models instead of (1, 40) signals."""
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.seed = seed
    key = hashlib.sha1(repr(sorted(vars(args).items())).encode()).hexdigest()[:12]
    cache = Path(cache_dir) if cache_dir else default_cache_dir()
    path = cache / f"mnist1d_{key}.npz"
    if path.exists():
        d = dict(np.load(path))
    else:
        made = make_dataset(args)  # ≈ 0.8 s, offline
        d = {k: np.asarray(made[k]) for k in ("x", "y", "x_test", "y_test")}
        cache.mkdir(parents=True, exist_ok=True)
        with replaced_atomically(path, suffix=".npz") as tmp:  # concurrent runs never read a half-written cache
            np.savez(tmp, **d)
    shape = (-1, 40, 1) if as_sequence else (-1, 1, 40)
    return ArrayDataset(
        x=d["x"].astype(np.float32).reshape(shape),
        y=d["y"].astype(np.int64),
        task="classification",
        kind="sequence" if as_sequence else "signal",
        num_classes=10,
        x_test=d["x_test"].astype(np.float32).reshape(shape),
        y_test=d["y_test"].astype(np.int64),
    )
