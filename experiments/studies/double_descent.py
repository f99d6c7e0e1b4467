"""Model-wise and epoch-wise double descent (``study=double_descent``; Belkin et al. 2019, Nakkiran
et al. 2019). MLPs of ``study.depth`` hidden layers of each width train on MNIST-1D with a fraction
of their training labels replaced by another class, every width with the same fixed budget, so the
wide ones fit every label; the test error against width peaks near the interpolation threshold (the
first width that fits its training labels) and falls again beyond it. Each ``study.label_noise``
level is one curve (clean labels, 0, show a smaller peak). The seeds of one width are trained
together as one seeded fit (experiments/studies/ensembles.py): seed s draws its own training signals
(the same at every noise level, so the levels pair by seed), its own validation signals (clean, never
trained on), its own noisy labels, initialization and batch order. Train, validation and test error
are also recorded every ``study.eval_every`` epochs: the epoch-wise curve. The report chooses the
widths and epochs it compares on the validation error and measures them on the test split."""

from __future__ import annotations

import math
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf

from core.errors import ConfigError
from core.rules import check as check_rule
from core.rules import fraction, is_int, number
from experiments.studies.common import Clock, check_kept, finish, kept, log
from experiments.studies.ensembles import check_optimizer, fit_members, mnist1d_flat, predict, relabel
from experiments.studies.members import check_seeds
from numerics.intervals import interval

MNIST1D_TRAIN = 4000  # MNIST-1D's training signals (its test split is 1,000)
FITS = 0.999  # a width interpolates when its members fit this fraction of their training labels (mean over seeds)


def check(s: DictConfig) -> None:
    check_seeds(s.seeds, at_least=2, distinct=True)  # every comparison is a paired interval over seeds
    w = list(s.widths) if OmegaConf.is_list(s.widths) else None
    if not w or any(not is_int(x) or x < 1 for x in w) or w != sorted(set(w)):
        raise ConfigError(f"study.widths={w if w is not None else s.widths}: a non-empty increasing list of integers >= 1")
    check_rule("study.depth", s.depth, number(1, integer=True))
    check_rule("study.n_train", s.n_train, number(10, MNIST1D_TRAIN - 10, integer=True))
    check_rule("study.n_val", s.n_val, number(10, MNIST1D_TRAIN - s.n_train, integer=True))
    noise = list(s.label_noise) if OmegaConf.is_list(s.label_noise) else None
    if not noise or any(fraction(p) for p in noise):
        raise ConfigError(
            f"study.label_noise={noise if noise is not None else s.label_noise}: a non-empty list of fractions in [0, 1), e.g. [0.2, 0.0]"
        )
    if len({float(p) for p in noise}) != len(noise):
        raise ConfigError(f"study.label_noise={noise}: a level is repeated")
    for key in ("epochs", "batch_size", "eval_every"):
        check_rule(f"study.{key}", s[key], number(1, integer=True))
    if s.eval_every > s.epochs:
        raise ConfigError(f"study.eval_every={s.eval_every}: at most study.epochs={s.epochs}")


class Sets(NamedTuple):
    """Every seed's own training signals (noisy labels) and validation signals (clean), stacked, with
    seed i's rows in ``rows[i]`` / ``val_rows[i]``; and the shared test split."""

    x: torch.Tensor
    y: torch.Tensor
    rows: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    val_rows: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    classes: int


def training_sets(s: DictConfig, noise: float) -> Sets:
    """Seed s draws ``n_train`` of MNIST-1D's training signals (the same at every noise level) and
    ``n_val`` more that it never trains on, its validation set; ``noise`` of its training labels are
    replaced by another class (a draw of this level's own), its validation labels are clean."""
    x, y, xt, yt, classes = mnist1d_flat()
    train, val = [], []
    for seed in s.seeds:
        order = np.random.default_rng(seed).permutation(len(x))
        train.append(
            (x[order[: s.n_train]], relabel(y[order[: s.n_train]], noise, np.random.default_rng([seed, round(noise * 1_000_000)]), classes))
        )
        val.append((x[order[s.n_train : s.n_train + s.n_val]], y[order[s.n_train : s.n_train + s.n_val]]))
    k = len(s.seeds)
    stack = lambda pairs, i: torch.from_numpy(np.concatenate([p[i] for p in pairs]))  # noqa: E731
    return Sets(
        stack(train, 0),
        stack(train, 1),
        torch.arange(k * s.n_train).view(k, s.n_train),
        stack(val, 0),
        stack(val, 1),
        torch.arange(k * s.n_val).view(k, s.n_val),
        torch.from_numpy(xt),
        torch.from_numpy(yt),
        classes,
    )


SPLITS = ("train", "val", "test")


@torch.no_grad()
def outputs(module, d: Sets) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Each member's logits and labels on its own training rows, its own validation rows and the shared test split: (K, n, C), (K, n)."""
    device = module.device
    own = lambda x, y, rows: (module.net(x[rows].to(device)).cpu(), y[rows])  # noqa: E731
    test = predict(module, d.x_test.to(device)).cpu()
    return {
        "train": own(d.x, d.y, d.rows),
        "val": own(d.x_val, d.y_val, d.val_rows),
        "test": (test, d.y_test.expand(len(test), -1)),
    }


class ErrorCurve(pl.Callback):
    """Every member's error on its own training labels, its own validation signals and the test split,
    every ``every`` epochs and at the last: the epoch-wise curve. It only measures; the report chooses
    its epochs on the validation curve."""

    def __init__(self, every: int, data: Sets):
        self.every, self.data = every, data
        self.epochs: list[int] = []
        self.errors: dict[str, list[list[float]]] = {split: [] for split in SPLITS}  # per measurement, per member

    def on_train_epoch_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        epoch = trainer.current_epoch + 1
        if epoch % self.every and epoch != trainer.max_epochs:
            return
        was = module.training
        module.eval()
        found = outputs(module, self.data)
        module.train(was)
        self.epochs.append(epoch)
        for split, (logits, labels) in found.items():
            self.errors[split].append((logits.argmax(-1) != labels).float().mean(1).tolist())


def width_part(cfg: DictConfig, noise: float, width: int) -> dict:
    """Every seed's members of ``width`` at ``noise``, trained as one fit: their final errors and losses, and the epoch-wise curve."""
    s = cfg.study
    d = training_sets(s, noise)
    curve = ErrorCurve(s.eval_every, d)
    fit = fit_members(
        cfg,
        s.lr,
        list(s.seeds),
        [width] * s.depth,
        "classification",
        d.x,
        d.y,
        d.rows,
        s.epochs,
        s.batch_size,
        d.classes,
        callbacks=[curve],
    )
    found = outputs(fit, d)
    params = sum(p[0].numel() for p in fit.net.tensors()[0].values())  # one member's
    rows = []
    for i, seed in enumerate(s.seeds):
        row = {"label_noise": noise, "seed": seed, "width": width, "params": params}
        for split, (logits, labels) in found.items():
            row[f"{split}_err"] = float((logits[i].argmax(-1) != labels[i]).float().mean())
        for split, (logits, labels) in found.items():
            row[f"{split}_loss"] = float(F.cross_entropy(logits[i], labels[i]))
        rows.append(row)
    return {"rows": rows, "curve": {"epoch": curve.epochs, **{f"{split}_err": curve.errors[split] for split in SPLITS}}}


def part_name(noise: float, width: int) -> str:
    return f"noise{float(noise)!r}_width{width}"  # repr: two levels never share a file


def settings(cfg: DictConfig) -> dict:
    """What a finished part was computed with: a resumed study keeps it only when these are unchanged."""
    s = cfg.study
    keys = ("seeds", "depth", "n_train", "n_val", "epochs", "batch_size", "lr", "eval_every")
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
            for key in (*(f"{split}_err" for split in SPLITS), *(f"{split}_loss" for split in SPLITS)):
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
    want = settings(cfg)
    check_kept(study_dir, "noise", want)  # before anything trains: no part of other settings beside the new ones
    rows, curves = [], {}
    for noise in s.label_noise:
        for width in s.widths:
            part = kept(study_dir, part_name(noise, width), want, lambda noise=noise, width=width: width_part(cfg, noise, width))
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
