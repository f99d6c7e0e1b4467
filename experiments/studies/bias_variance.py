"""Bias and variance against capacity (``study=bias_variance``). For each width the members are
trained together as one seeded fit of the template's MLP with the ``optimizer=`` chosen
(experiments/studies/ensembles.py), each on its own training data: (a) regression — independent
draws from a known function with Gaussian noise, the decomposition against the truth; (b)
classification — disjoint parts of MNIST-1D, Yang et al. (2020)'s MSE and cross-entropy
decompositions on the test split. The interpolation threshold is the first width whose members fit
their (noisy) training labels completely."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig

from callbacks.plot_style import new_figure, palette, save_figure
from core.errors import ConfigError
from core.files import write_text_atomic
from experiments.studies.common import Clock, cached, finish, log
from experiments.studies.ensembles import check_optimizer, fit_members, mnist1d_flat, predict, predict_own, relabel
from experiments.studies.members import check_seeds
from numerics import decomposition as dec
from numerics.intervals import direction, interval, paired


def check(s: DictConfig) -> None:
    check_seeds(s.seeds)
    if not s.widths or any(not isinstance(w, int) or w < 1 for w in s.widths):
        raise ConfigError(f"study.widths={list(s.widths)}: a non-empty list of integers >= 1")
    c = s.classification
    if c.members * c.part_size > 4000:
        raise ConfigError(
            f"study.classification: members × part_size = {c.members * c.part_size} exceeds MNIST-1D's 4,000 training signals"
        )
    if not 0 <= c.label_noise < 1:
        raise ConfigError(f"study.classification.label_noise={c.label_noise}: must be in [0, 1)")
    for part in ("regression", "classification"):
        p = s[part]
        if p.members < 2:
            raise ConfigError(f"study.{part}.members={p.members}: a variance needs at least 2 members")


def regression_rows(cfg: DictConfig, seed: int) -> list[dict]:
    from datamodules.embedded import regression_outliers, regression_truth

    s = cfg.study
    r = s.regression
    sets = [
        regression_outliers(n_samples=r.n_train, n_test=1, noise=r.noise, outlier_fraction=0.0, seed=1000 * seed + k)
        for k in range(r.members)
    ]
    x = torch.from_numpy(np.concatenate([d.x for d in sets]))  # (K·n, 1): member k's own points are rows k·n … (k+1)·n − 1
    y = torch.from_numpy(np.concatenate([d.y for d in sets]))  # (K·n, 1)
    rows = torch.arange(r.members * r.n_train).view(r.members, r.n_train)
    grid = torch.linspace(-3, 3, 600).unsqueeze(1)
    truth = torch.from_numpy(regression_truth(grid.numpy()))
    out = []
    for width in s.widths:
        seeds = [1000 * seed + k for k in range(r.members)]
        fit = fit_members(cfg, r.lr, seeds, [width], "regression", x, y, rows, r.epochs, r.batch_size, 1)
        parts = dec.regression(predict(fit, grid), truth)
        train_mse = float(((predict_own(fit, x, rows) - y[rows]) ** 2).mean())  # each member on its own training set
        out.append(
            {
                "part": "regression",
                "seed": seed,
                "width": width,
                "bias2": parts["bias2"],
                "variance": parts["variance"],
                "noise": r.noise**2,
                "risk": parts["bias2"] + parts["variance"] + r.noise**2,
                "train_mse": train_mse,
            }
        )
    return out


def mnist1d_parts(s: DictConfig, seed: int):
    """MNIST-1D normalized, its training labels with each part's noise, and the parts: (K, part_size) rows."""
    c = s.classification
    x, y, xt, yt, classes = mnist1d_flat()
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(x))[: c.members * c.part_size].reshape(c.members, c.part_size)
    y = y.copy()
    y[order] = relabel(y[order], c.label_noise, rng, classes)  # the parts are disjoint: each label belongs to one member at most
    return torch.from_numpy(x), torch.from_numpy(y), torch.from_numpy(order), torch.from_numpy(xt), torch.from_numpy(yt), classes


def classification_rows(cfg: DictConfig, seed: int) -> list[dict]:
    s = cfg.study
    c = s.classification
    x, y, rows, xt, yt, classes = mnist1d_parts(s, seed)
    out = []
    for width in s.widths:
        seeds = [1000 * seed + k for k in range(c.members)]
        fit = fit_members(cfg, c.lr, seeds, [width], "classification", x, y, rows, c.epochs, c.batch_size, classes)
        logits = predict(fit, xt)  # (K, n_test, C)
        log_probs = torch.log_softmax(logits, -1)
        mse, ce = dec.classification_mse(log_probs.exp(), yt), dec.classification_ce(log_probs, yt)
        train_acc = float((predict_own(fit, x, rows).argmax(-1) == y[rows]).float().mean())
        test_acc = float((logits.argmax(-1) == yt).float().mean())
        ensemble_acc = float((log_probs.exp().mean(0).argmax(-1) == yt).float().mean())
        out.append(
            {
                "part": "classification",
                "seed": seed,
                "width": width,
                "risk": mse["risk"],  # the MSE decomposition on one-hot targets
                "bias2": mse["bias2"],
                "variance": mse["variance"],
                "ce_risk": ce["risk"],
                "ce_bias": ce["bias"],
                "ce_variance": ce["variance"],
                "train_acc": train_acc,
                "test_acc": test_acc,
                "ensemble_test_acc": ensemble_acc,
            }
        )
    return out


def summarize(rows: list[dict]) -> list[dict]:
    out = []
    for part in ("regression", "classification"):
        for width in sorted({r["width"] for r in rows if r["part"] == part}):
            ms = [r for r in rows if r["part"] == part and r["width"] == width]
            row = {"part": part, "width": width, "seeds": len(ms)}
            for key in ms[0]:
                if key not in ("part", "seed", "width"):
                    mean, _, half = interval(r[key] for r in ms)
                    row[key], row[f"{key}_ci"] = mean, half
            out.append(row)
    return out


def threshold(table: list[dict]) -> int | None:
    """The first width whose members fit every training label (mean over seeds ≥ 0.999)."""
    return next((r["width"] for r in table if r["part"] == "classification" and r["train_acc"] >= 0.999), None)


def figure(table: list[dict], folder: Path, writer) -> None:
    fig, axes = new_figure(1, 3, width=3.6, height=3.1)
    colors = dict(zip(("risk", "bias", "variance"), palette(3)))
    panels = (
        ("regression", "regression: test MSE", (("risk", "risk"), ("bias2", "bias"), ("variance", "variance"))),
        ("classification", "MNIST-1D: MSE on one-hot", (("risk", "risk"), ("bias2", "bias"), ("variance", "variance"))),
        ("classification", "MNIST-1D: cross-entropy", (("ce_risk", "risk"), ("ce_bias", "bias"), ("ce_variance", "variance"))),
    )
    t = threshold(table)
    for ax, (part, title, series) in zip(axes[0], panels):
        rs = [r for r in table if r["part"] == part]
        w = [r["width"] for r in rs]
        for key, kind in series:
            m, h = np.array([r[key] for r in rs]), np.array([r[f"{key}_ci"] for r in rs])
            label = {"risk": "risk", "bias": "bias²" if "2" in key or part == "regression" else "bias", "variance": "variance"}[kind]
            ax.plot(w, m, marker="o", markersize=3, color=colors[kind], label=label)
            ax.fill_between(w, m - h, m + h, color=colors[kind], alpha=0.2, linewidth=0)
        if part == "classification" and t is not None:
            ax.axvline(t, color="0.5", linestyle=":", linewidth=1)
            ax.text(t, ax.get_ylim()[1], " interpolation", fontsize=7, color="0.4", va="top")
        ax.set_xscale("log", base=2)
        ax.set_xlabel("hidden units")
        ax.set_title(title, fontsize=10)
        ax.legend(loc="best", fontsize=7)
    fig.tight_layout()
    save_figure(fig, folder, "bias_variance", writer)


def write_report(study_dir: Path, cfg: DictConfig, rows: list[dict], table: list[dict], wall_s: float) -> None:
    s = cfg.study

    def diff(part: str, key: str, wa: int, wb: int) -> tuple[float, float, int]:
        """``key`` at width ``wa`` minus at ``wb``, paired by seed (each seed repeats every width on the same data)."""
        at = lambda w: {x["seed"]: x[key] for x in rows if x["part"] == part and x["width"] == w}  # noqa: E731
        return paired(at(wa), at(wb))

    def falls(part: str, key: str) -> tuple[bool, str]:
        """From the narrowest to the widest width, beyond the paired interval."""
        lo, hi = min(s.widths), max(s.widths)
        d, h, k = diff(part, key, hi, lo)
        return direction(d, h, k) < 0, f"{d:+.4f} ± {h:.4f} from width {lo} to {hi}"

    def unimodal(rs: list[dict], part: str, key: str) -> tuple[str, str]:
        """Does ``key`` peak inside the widths and then fall beyond the paired interval?"""
        v, w = [x[key] for x in rs], [x["width"] for x in rs]
        top = int(np.argmax(v))
        if top == len(v) - 1:
            return "not observed", f"still highest at the widest width tried, {w[-1]}"
        if top == 0:
            return "not observed", f"highest at the narrowest width, {w[0]}: it only falls"
        up, up_h, k = diff(part, key, w[top], w[0])
        d, h, k = diff(part, key, w[-1], w[top])
        said = f"peak {v[top]:.4f} at width {w[top]}, {v[-1]:.4f} at {w[-1]} ({d:+.4f} ± {h:.4f} paired)"
        if direction(up, up_h, k) > 0 and direction(d, h, k) < 0:
            return "consistent", said
        return f"not observed up to width {w[-1]}: no rise and fall beyond the intervals", said

    reg = [r for r in table if r["part"] == "regression"]
    cls = [r for r in table if r["part"] == "classification"]
    t = threshold(table)

    def shape(rows: list[dict], key: str) -> str:
        """Where the curve peaks and bottoms out, in words, with the values."""
        v, w = [x[key] for x in rows], [x["width"] for x in rows]
        hi, lo = int(np.argmax(v)), int(np.argmin(v))
        if 0 < hi < len(v) - 1 and v[-1] < 0.9 * v[hi]:
            return f"rises then falls (peak {v[hi]:.4f} at width {w[hi]}, {v[-1]:.4f} at {w[-1]})"
        if 0 < lo < len(v) - 1 and v[-1] > 1.1 * v[lo]:
            return f"falls then rises (minimum {v[lo]:.4f} at width {w[lo]}, {v[-1]:.4f} at {w[-1]})"
        flat = next(i for i in range(len(v)) if all(abs(x - v[-1]) <= 0.05 * abs(v[-1]) for x in v[i:]))
        trend = "rises" if v[-1] > v[0] else "falls"
        if 0 < flat < len(v) - 1:
            return (
                f"{trend} from {v[0]:.4f} (width {w[0]}) to {v[flat]:.4f} at width {w[flat]}, then stays within 5% ({v[-1]:.4f} at {w[-1]})"
            )
        return f"{trend} from {v[0]:.4f} (width {w[0]}) to {v[-1]:.4f} (width {w[-1]})"

    c, r = s.classification, s.regression
    lines = [
        "# Bias and variance against width",
        "",
        f"One-hidden-layer MLPs of widths {list(s.widths)}, seeds {list(s.seeds)} (each seed repeats every ensemble), the members "
        f"of each width trained together as one seeded fit. (a) Regression: {r.members} members, each on its own {r.n_train} points of "
        f"y = sin x + 0.1 x² + N(0, {r.noise}²), {r.epochs} epochs; bias² and variance on a 600-point grid against the true function. "
        f"(b) MNIST-1D: {c.members} members on disjoint parts of {c.part_size} training signals with {c.label_noise:.0%} of labels "
        f"replaced by another class, {c.epochs} epochs, decompositions on the 1,000 test signals. Mean ± 95% CI over seeds. "
        f"Optimizer {cfg.optimizer.name} (lr {r.lr:g} regression, {c.lr:g} MNIST-1D; weight decay "
        f"{cfg.regularization.weight_decay:g}). Wall time {wall_s:.0f} s.",
        "",
        "## Claims and what this study measured",
        "",
        "| claim | measured here | verdict |",
        "|---|---|---|",
    ]
    n = f" ({len(s.seeds)} seeds)" if len(s.seeds) > 1 else " (undecided: one seed, no interval)"
    bias_falls, bias_said = falls("regression", "bias2")
    v_lo = min(reg, key=lambda x: x["variance"])["width"]
    d, h, k = diff("regression", "variance", max(s.widths), v_lo)
    rises = v_lo != max(s.widths) and direction(d, h, k) > 0
    lines.append(
        f"| Classical: bias falls and variance rises with capacity (Geman et al. 1992) | regression: bias² {shape(reg, 'bias2')} "
        f"({bias_said}, paired); variance {shape(reg, 'variance')} ({d:+.4f} ± {h:.4f} from its minimum at width {v_lo}, paired) | "
        f"{'consistent' if bias_falls and rises else 'bias falls, variance not beyond the interval' if bias_falls else 'not observed'}{n} |"
    )
    verdict, said = unimodal(cls, "classification", "variance")
    cls_bias_falls, cls_bias_said = falls("classification", "bias2")
    lines.append(
        f"| Modern: variance is unimodal in width, peaking near the interpolation threshold, while bias falls (Yang et al. 2020) | "
        f"MNIST-1D, MSE: variance {shape(cls, 'variance')}: {said}; bias² {shape(cls, 'bias2')} ({cls_bias_said}, paired); "
        f"interpolation threshold {'width ' + str(t) if t else 'not reached at these widths'} | variance: {verdict}; bias falls: "
        f"{'consistent' if cls_bias_falls else 'not beyond the interval'}{n} |"
    )
    verdict, said = unimodal(cls, "classification", "ce_variance")
    lines.append(
        f"| Cross-entropy decomposition: the same shape (Yang et al. 2020) | bias {shape(cls, 'ce_bias')}; variance "
        f"{shape(cls, 'ce_variance')}: {said} | variance: {verdict}{n} |"
    )
    below = [x for x in cls if t is not None and x["width"] < t]
    if below:
        b_lo = min(below, key=lambda x: x["ce_bias"])["width"]  # its minimum before the threshold
        d, h, k = diff("classification", "ce_bias", t, b_lo)
        verdict = "consistent" if direction(d, h, k) > 0 else "not observed"
        shown = f"{d:+.3f} ± {h:.3f} from its minimum below the threshold (width {b_lo}) to the threshold (paired)"
    elif t is not None:
        verdict, shown = "undecided: no width below the threshold", f"threshold at the narrowest width, {t}"
    else:
        verdict, shown = "undecided: the threshold is not reached", "no threshold"
    lines += [
        "| Interpolating members are overconfident, so the cross-entropy bias can rise at the threshold | CE bias at widths "
        + ", ".join(f"{x['width']}: {x['ce_bias']:.3f}" for x in cls)
        + f"; {shown} | {verdict}{n} |",
        "",
        "| part | width | risk | bias² (CE: bias) | variance | train fit | test acc (one member / ensemble) |",
        "|---|---|---|---|---|---|---|",
    ]
    for x in reg:
        lines.append(
            f"| regression | {x['width']} | {x['risk']:.4f} | {x['bias2']:.4f} | {x['variance']:.4f} ± "
            f"{x['variance_ci']:.4f} | "
            f"train MSE {x['train_mse']:.4f} | |"
        )
    for x in cls:
        lines.append(
            f"| MNIST-1D MSE | {x['width']} | {x['risk']:.4f} | {x['bias2']:.4f} | {x['variance']:.4f} ± "
            f"{x['variance_ci']:.4f} | train acc {x['train_acc']:.3f} | {x['test_acc']:.3f} / "
            f"{x['ensemble_test_acc']:.3f} |"
        )
    for x in cls:
        lines.append(
            f"| MNIST-1D CE | {x['width']} | {x['ce_risk']:.4f} | {x['ce_bias']:.4f} | {x['ce_variance']:.4f} ± "
            f"{x['ce_variance_ci']:.4f} | | |"
        )
    lines += [
        "",
        f"Noise σ² = {r.noise**2:.3f} is part of the regression risk (risk = bias² + variance + σ²).",
        "",
        "![bias and variance](figures/bias_variance.png)",
        "",
        "Files: `results.csv` (per part, seed and width), `summary.csv`, `figures/`.",
    ]
    write_text_atomic(study_dir / "report.md", "\n".join(lines) + "\n")


def run(cfg: DictConfig, study_dir: Path) -> dict:
    s, clock = cfg.study, Clock()
    check(s)
    check_optimizer(cfg, ("study.regression.lr", "study.classification.lr"))
    rows = []
    for seed in s.seeds:
        for part, compute in (("regression", regression_rows), ("classification", classification_rows)):
            kept = cached(study_dir, f"{part}_seed{seed}", lambda compute=compute: compute(cfg, seed))
            if [r["width"] for r in kept] != list(s.widths) or "bias2" not in kept[0]:  # another command's, or an older version's
                raise ConfigError(
                    f"study.resume: parts/{part}_seed{seed}.json holds widths {[r['width'] for r in kept]} of another command or "
                    f"version than this one's study.widths={list(s.widths)}; resume with the command the study was started with, "
                    "or start a new study"
                )
            rows += kept
        log.info(f"seed {seed} done ({clock()} s)")
    table = summarize(rows)
    finish(
        study_dir,
        clock,
        rows,
        table,
        lambda writer: figure(table, study_dir / "figures", writer),
        lambda wall_s: write_report(study_dir, cfg, rows, table, wall_s),
    )
    t = threshold(table)
    return {"interpolation_width": t if t is not None else math.nan}
