"""Model-wise and epoch-wise double descent (``study=double_descent``; Belkin et al. 2019, Nakkiran
et al. 2019). MLPs of ``study.depth`` hidden layers of each width train on MNIST-1D with a fraction
of their training labels replaced by another class, every width with the same fixed budget, so the
wide ones fit every label; the test error against width peaks near the interpolation threshold (the
first width that fits its training labels) and falls again beyond it. Each ``study.label_noise``
level is one curve (clean labels, 0, show a smaller peak). The seeds of one width are trained
together as one seeded fit (experiments/studies/ensembles.py): seed s draws its own training signals
(the same at every noise level, so the levels pair by seed), its own noisy labels, initialization and
batch order. Train and test error are also recorded every ``study.eval_every`` epochs: the
epoch-wise curve. The test split is only measured, never used to choose anything."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf

from core.errors import ConfigError
from experiments.studies.common import Clock, cached, finish, log
from experiments.studies.ensembles import check_optimizer, fit_members, predict, predict_own
from experiments.studies.members import check_seeds
from numerics.intervals import interval

MNIST1D_TRAIN = 4000  # MNIST-1D's training signals (its test split is 1,000)
FITS = 0.999  # a width interpolates when its members fit this fraction of their training labels (mean over seeds)


def check(s: DictConfig) -> None:
    check_seeds(s.seeds)
    if len(s.seeds) < 2 or len(set(s.seeds)) != len(s.seeds):
        raise ConfigError(f"study.seeds={list(s.seeds)}: at least 2 distinct seeds (every comparison is a paired interval over seeds)")
    w = list(s.widths)
    if not w or any(not isinstance(x, int) or x < 1 for x in w) or w != sorted(set(w)):
        raise ConfigError(f"study.widths={w}: a non-empty increasing list of integers >= 1")
    if not isinstance(s.depth, int) or s.depth < 1:
        raise ConfigError(f"study.depth={s.depth}: the number of hidden layers, an integer >= 1")
    if not isinstance(s.n_train, int) or not 10 <= s.n_train <= MNIST1D_TRAIN:
        raise ConfigError(f"study.n_train={s.n_train}: an integer in [10, {MNIST1D_TRAIN}] (MNIST-1D's training signals)")
    noise = list(s.label_noise) if OmegaConf.is_list(s.label_noise) else None
    if not noise or any(isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 <= p < 1 for p in noise):
        raise ConfigError(f"study.label_noise={s.label_noise}: a non-empty list of fractions in [0, 1), e.g. [0.2, 0.0]")
    if len(set(noise)) != len(noise):
        raise ConfigError(f"study.label_noise={noise}: a level is repeated")
    for key in ("epochs", "batch_size", "eval_every"):
        if not isinstance(s[key], int) or s[key] < 1:
            raise ConfigError(f"study.{key}={s[key]}: an integer >= 1")
    if s.eval_every > s.epochs:
        raise ConfigError(f"study.eval_every={s.eval_every}: at most study.epochs={s.epochs}")


def training_sets(s: DictConfig, noise: float):
    """MNIST-1D normalized; every seed's own ``n_train`` training signals with ``noise`` of their labels
    replaced by another class, stacked: x (K·n, 40), y (K·n,), rows (K, n) (seed i's are rows[i]); and the test split."""
    from datamodules.datasets import load

    ds = load("mnist1d")
    x, xt = ds.x.reshape(len(ds.x), -1), ds.x_test.reshape(len(ds.x_test), -1)
    mean, std = x.mean(), x.std()  # one channel: statistics of the training split
    x, xt = (x - mean) / std, (xt - mean) / std
    xs, ys = [], []
    for seed in s.seeds:
        chosen = np.random.default_rng(seed).permutation(len(x))[: s.n_train]  # the same signals at every noise level
        y = ds.y[chosen].copy()
        rng = np.random.default_rng([seed, round(noise * 1_000_000)])  # this level's own draw of which labels change
        flip = rng.random(len(y)) < noise
        y[flip] = (y[flip] + rng.integers(1, ds.num_classes, flip.sum())) % ds.num_classes  # another class
        xs.append(x[chosen])
        ys.append(y)
    k, n = len(s.seeds), s.n_train
    return (
        torch.from_numpy(np.concatenate(xs)),
        torch.from_numpy(np.concatenate(ys)),
        torch.arange(k * n).view(k, n),
        torch.from_numpy(xt),
        torch.from_numpy(ds.y_test),
        ds.num_classes,
    )


class ErrorCurve(pl.Callback):
    """Every member's error on its own training labels and on the test split, every ``every`` epochs
    and at the last: the epoch-wise curve. It only measures; nothing is chosen by it."""

    def __init__(self, every: int, x: torch.Tensor, y: torch.Tensor, rows: torch.Tensor, xt: torch.Tensor, yt: torch.Tensor):
        self.every, self.x, self.y, self.rows, self.xt, self.yt = every, x, y, rows, xt, yt
        self.epochs: list[int] = []
        self.train_err: list[list[float]] = []  # per measurement, per member
        self.test_err: list[list[float]] = []

    def on_train_epoch_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        epoch = trainer.current_epoch + 1
        if epoch % self.every and epoch != trainer.max_epochs:
            return
        was = module.training
        module.eval()
        with torch.no_grad():
            own = module.net(self.x[self.rows].to(module.device)).argmax(-1).cpu()
            test = predict(module, self.xt.to(module.device)).argmax(-1).cpu()
        module.train(was)
        self.epochs.append(epoch)
        self.train_err.append((own != self.y[self.rows]).float().mean(1).tolist())
        self.test_err.append((test != self.yt).float().mean(1).tolist())


def width_part(cfg: DictConfig, noise: float, width: int) -> dict:
    """Every seed's members of ``width`` at ``noise``, trained as one fit: their final errors and losses, and the epoch-wise curve."""
    s = cfg.study
    x, y, rows, xt, yt, classes = training_sets(s, noise)
    curve = ErrorCurve(s.eval_every, x, y, rows, xt, yt)
    hidden = [width] * s.depth
    fit = fit_members(cfg, s.lr, list(s.seeds), hidden, "classification", x, y, rows, s.epochs, s.batch_size, classes, callbacks=[curve])
    own, test = predict_own(fit, x, rows), predict(fit, xt)  # (K, n, C), (K, n_test, C)
    train_loss = F.cross_entropy(own.flatten(0, 1), y[rows].flatten(), reduction="none").view(len(s.seeds), -1).mean(1)
    test_loss = F.cross_entropy(test.flatten(0, 1), yt.repeat(len(s.seeds)), reduction="none").view(len(s.seeds), -1).mean(1)
    params = sum(p[0].numel() for p in fit.net.tensors()[0].values())  # one member's
    rows_out = [
        {
            "label_noise": noise,
            "seed": seed,
            "width": width,
            "params": params,
            "train_err": float((own[i].argmax(-1) != y[rows[i]]).float().mean()),
            "test_err": float((test[i].argmax(-1) != yt).float().mean()),
            "train_loss": float(train_loss[i]),
            "test_loss": float(test_loss[i]),
        }
        for i, seed in enumerate(s.seeds)
    ]
    return {
        "settings": settings(cfg),
        "rows": rows_out,
        "curve": {"epoch": curve.epochs, "train_err": curve.train_err, "test_err": curve.test_err},
    }


def settings(cfg: DictConfig) -> dict:
    """What a finished part was computed with: a resumed study keeps it only when these are unchanged."""
    s = cfg.study
    keys = ("seeds", "depth", "n_train", "epochs", "batch_size", "lr", "eval_every")
    return {
        **{k: OmegaConf.to_container(s[k]) if OmegaConf.is_list(s[k]) else s[k] for k in keys},
        "optimizer": OmegaConf.to_container(cfg.optimizer),
        "regularization": OmegaConf.to_container(cfg.regularization),
        "scheduler": OmegaConf.to_container(cfg.scheduler),
    }


def summarize(rows: list[dict]) -> list[dict]:
    """Per (label noise, width): the mean over seeds and the half-width of its 95% interval (``*_ci``)."""
    out = []
    for noise in dict.fromkeys(r["label_noise"] for r in rows):
        for width in sorted({r["width"] for r in rows if r["label_noise"] == noise}):
            ms = [r for r in rows if r["label_noise"] == noise and r["width"] == width]
            row = {"label_noise": noise, "width": width, "params": ms[0]["params"], "seeds": len(ms)}
            for key in ("train_err", "test_err", "train_loss", "test_loss"):
                mean, _, half = interval(r[key] for r in ms)
                row[key], row[f"{key}_ci"] = mean, half
            out.append(row)
    return out


def threshold(table: list[dict], noise: float) -> int | None:
    """The first width whose members fit their training labels (mean over seeds ≥ 99.9%), at ``noise``."""
    return next((r["width"] for r in table if r["label_noise"] == noise and 1 - r["train_err"] >= FITS), None)


def run(cfg: DictConfig, study_dir: Path) -> dict:
    s, clock = cfg.study, Clock()
    check(s)
    check_optimizer(cfg, ("study.lr",))
    rows, curves = [], {}
    for noise in s.label_noise:
        for width in s.widths:
            part = cached(study_dir, f"noise{noise:g}_width{width}", lambda noise=noise, width=width: width_part(cfg, noise, width))
            if part.get("settings") != settings(cfg):  # another command's, or an older version's
                raise ConfigError(
                    f"study.resume: parts/noise{noise:g}_width{width}.json was computed with other settings than this command's "
                    f"({part.get('settings')}); resume with the command the study was started with, or start a new study"
                )
            rows += part["rows"]
            curves[(noise, width)] = part["curve"]
            log.info(f"label noise {noise:g}, width {width}: test error {np.mean([r['test_err'] for r in part['rows']]):.3f} ({clock()} s)")
    table = summarize(rows)
    from experiments.studies.double_descent_plots import figure
    from experiments.studies.double_descent_report import write_report

    finish(
        study_dir,
        clock,
        rows,
        table,
        lambda writer: figure(table, curves, s, study_dir / "figures", writer),
        lambda wall_s: write_report(study_dir, cfg, rows, table, curves, wall_s),
    )
    t = threshold(table, s.label_noise[0])
    return {"interpolation_width": t if t is not None else math.nan}
