"""Bagging and boosting (``study=bagging``) on MNIST-1D.

Bagging (Breiman 1996): K copies of one network, each on its own bootstrap resample of the training
set, trained together as one seeded fit of the template's MLP (``experiments/studies/ensembles.py``)
with one more member, the single copy trained on the whole set; the ensemble averages
probabilities. Accuracy against ensemble size; the out-of-bag estimate (each training signal scored
by the members that never drew it) against the test accuracy.
Boosting (SAMME, Zhu et al. 2009) by resampling (Freund & Schapire 1996): in each round a weak
network is trained on a resample of the training set drawn with the round's sample weights, its
vote weighted by α_r = log((1 − err_r)/err_r) + log(C − 1); the seeds' weak learners of one round
are the members of one fit."""

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
from experiments.studies.ensembles import check_optimizer, fit_members, mnist1d_flat, predict
from experiments.studies.members import check_seeds
from numerics.intervals import direction, interval, paired


def check(s: DictConfig) -> None:
    check_seeds(s.seeds)
    if len(s.seeds) < 2:
        raise ConfigError(
            f"study.seeds={list(s.seeds)}: the ensemble is compared with one network paired by seed, which needs at least 2 seeds"
        )
    if s.bagging.members < 2:
        raise ConfigError(f"study.bagging.members={s.bagging.members}: an ensemble needs at least 2")
    if s.boosting.rounds < 1:
        raise ConfigError(f"study.boosting.rounds={s.boosting.rounds}: must be >= 1")


def data():
    x, y, xt, yt, classes = mnist1d_flat()
    return torch.from_numpy(x), torch.from_numpy(y), torch.from_numpy(xt), torch.from_numpy(yt), classes


def bagging(cfg: DictConfig, seed: int, x, y, xt, yt, classes: int) -> tuple[list[dict], dict]:
    b, n = cfg.study.bagging, len(x)
    g = torch.Generator().manual_seed(seed)
    draws = torch.randint(0, n, (b.members, n), generator=g)  # (K, n) bootstrap indices
    rows = torch.cat([draws, torch.arange(n)[None]])  # and the single network: every signal once
    seeds = [1000 * seed + k for k in range(b.members)] + [1000 * seed + 999]
    fit = fit_members(cfg, b.lr, seeds, b.hidden, "classification", x, y, rows, b.epochs, b.batch_size, classes)
    probs = predict(fit, xt).softmax(-1)  # (K + 1, n_test, C)
    probs, single = probs[:-1], probs[-1]
    curve = [
        {"part": "bagging", "seed": seed, "size": m, "test_acc": float((probs[:m].mean(0).argmax(-1) == yt).float().mean())}
        for m in range(1, b.members + 1)
    ]
    members = (probs.argmax(-1) == yt).float().mean(1)  # each member alone
    in_bag = torch.zeros(b.members, n, dtype=torch.bool)
    in_bag[torch.arange(b.members)[:, None], draws] = True
    train_probs = predict(fit, x)[:-1].softmax(-1)  # (K, n, C)
    oob_votes = (train_probs * (~in_bag)[..., None]).sum(0)  # out-of-bag members only
    has_oob = (~in_bag).any(0)
    summary = {
        "seed": seed,
        "single_test_acc": float((single.argmax(-1) == yt).float().mean()),
        "member_test_acc_mean": float(members.mean()),
        "ensemble_test_acc": curve[-1]["test_acc"],
        "oob_acc": float((oob_votes[has_oob].argmax(-1) == y[has_oob]).float().mean()),
        "oob_coverage": float(has_oob.float().mean()),
        "oob_fraction_per_member": float((~in_bag).float().mean()),
    }
    return curve, summary


def samme(cfg: DictConfig, seeds: list[int], x, y, xt, yt, classes: int) -> list[dict]:
    """SAMME by resampling for every seed at once: round r's weak learners (one per seed, each on a
    resample drawn with its seed's weights) are the members of one fit. A seed whose weak learner is
    no better than chance on its weighted data stops there (SAMME's rule); the others go on."""
    bo, n, k = cfg.study.boosting, len(x), len(seeds)
    w = torch.full((k, n), 1.0 / n)
    gens = [torch.Generator().manual_seed(seed) for seed in seeds]
    votes, votes_test = torch.zeros(k, n, classes), torch.zeros(k, len(xt), classes)
    going, rows = list(range(k)), []
    for r in range(bo.rounds):
        draws = torch.stack([torch.multinomial(w[i], n, replacement=True, generator=gens[i]) for i in going])
        fit = fit_members(
            cfg, bo.lr, [1000 * seeds[i] + r for i in going], bo.hidden, "classification", x, y, draws, bo.epochs, bo.batch_size, classes
        )
        pred, pred_test = predict(fit, x).argmax(-1), predict(fit, xt).argmax(-1)  # (members, n), (members, n_test)
        still = []
        for j, i in enumerate(going):
            miss = pred[j] != y
            err = float((w[i] * miss).sum() / w[i].sum())
            if err >= 1 - 1 / classes:  # no better than chance on the weighted data: SAMME stops
                log.info(f"boosting seed {seeds[i]}: round {r + 1} weighted error {err:.3f} ≥ chance, stopping")
                continue
            alpha = math.log((1 - err) / max(err, 1e-12)) + math.log(classes - 1)
            votes[i, torch.arange(n), pred[j]] += alpha
            votes_test[i, torch.arange(len(xt)), pred_test[j]] += alpha
            w[i] = w[i] * torch.exp(alpha * miss.float())
            w[i] = w[i] / w[i].sum()
            still.append(i)
            rows.append(
                {
                    "part": "boosting",
                    "seed": seeds[i],
                    "round": r + 1,
                    "weighted_error": err,
                    "alpha": alpha,
                    "train_acc": float((votes[i].argmax(-1) == y).float().mean()),
                    "test_acc": float((votes_test[i].argmax(-1) == yt).float().mean()),
                    "weak_test_acc": float((pred_test[j] == yt).float().mean()),
                }
            )
        going = still
        if not going:
            break
    return sorted(rows, key=lambda row: (row["seed"], row["round"]))


def figure(curves: list[dict], boost: list[dict], summaries: list[dict], folder: Path, writer) -> None:
    fig, axes = new_figure(1, 2, width=4.2, height=3.2)
    c1, c2, c3 = palette(3)
    ax = axes[0, 0]
    sizes = sorted({c["size"] for c in curves})
    m = np.array([np.mean([c["test_acc"] for c in curves if c["size"] == k]) for k in sizes])
    ax.plot(sizes, m, color=c1, marker="o", markersize=2.5, label="bagged ensemble (test)")
    single = np.mean([x["single_test_acc"] for x in summaries])
    oob = np.mean([x["oob_acc"] for x in summaries])
    ax.axhline(single, color=c2, linestyle="--", linewidth=1.2, label=f"one network, all data ({single:.3f})")
    ax.axhline(oob, color=c3, linestyle=":", linewidth=1.2, label=f"out-of-bag estimate ({oob:.3f})")
    ax.set_xlabel("members in the ensemble")
    ax.set_ylabel("accuracy")
    ax.legend(loc="lower right", fontsize=7)
    ax.set_title("bagging", fontsize=10)
    ax = axes[0, 1]
    rounds = sorted({b["round"] for b in boost})
    for key, color, label in (("train_acc", c1, "train"), ("test_acc", c2, "test"), ("weak_test_acc", c3, "weak learner alone (test)")):
        ax.plot(
            rounds,
            [np.mean([b[key] for b in boost if b["round"] == r]) for r in rounds],
            color=color,
            marker="o",
            markersize=2.5,
            label=label,
        )
    ax.set_xlabel("boosting rounds")
    ax.set_ylabel("accuracy")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.3), ncol=3, fontsize=7)  # below the axes: the weak learners' curve runs low
    ax.set_title("SAMME boosting", fontsize=10)
    fig.tight_layout()
    save_figure(fig, folder, "bagging_boosting", writer)


def write_report(study_dir: Path, cfg: DictConfig, summaries: list[dict], boost: list[dict], wall_s: float) -> None:
    s = cfg.study

    def ci(key, rows=summaries):
        mean, _, half = interval(r[key] for r in rows)
        return f"{mean:.4f} ± {half:.4f}"

    by = lambda key: {r["seed"]: r[key] for r in summaries}  # noqa: E731
    gain, gain_half, k = paired(by("ensemble_test_acc"), by("single_test_acc"))  # each seed's ensemble and network share its data
    oob_gap = np.mean([r["oob_acc"] - r["ensemble_test_acc"] for r in summaries])
    last = max((b["round"] for b in boost), default=0)  # 0: every seed's first weak learner was no better than chance
    first_rows, last_rows = [b for b in boost if b["round"] == 1], [b for b in boost if b["round"] == last]
    side = direction(gain, gain_half, k)
    verdict_bagging = "consistent" if side > 0 else "the opposite, beyond the interval" if side < 0 else "not beyond the interval"
    ends = {b["seed"]: b["train_acc"] for b in sorted(boost, key=lambda b: b["round"])}  # each seed's last round
    rise, rise_half, k_boost = paired(ends, {b["seed"]: b["train_acc"] for b in first_rows}) if first_rows else (math.nan, math.nan, 0)
    side = direction(rise, rise_half, k_boost)
    verdict_boosting = "consistent" if side > 0 else "the opposite, beyond the interval" if side < 0 else "not beyond the interval"
    b, bo = s.bagging, s.boosting
    lines = [
        "# Bagging and boosting",
        "",
        f"MNIST-1D (4,000 training, 1,000 test signals), seeds {list(s.seeds)}, mean ± 95% CI. Bagging: {b.members} MLPs "
        f"{list(b.hidden)} on "
        f"bootstrap resamples, {b.epochs} epochs; the single network is the same MLP on all the data, trained in the same fit. "
        f"Boosting: SAMME, {bo.rounds} rounds of MLPs {list(bo.hidden)}, {bo.epochs} epochs each, "
        "each on a resample drawn with the round's sample weights. "
        f"Optimizer {cfg.optimizer.name} (lr {b.lr:g} bagging, {bo.lr:g} boosting; weight decay {cfg.regularization.weight_decay:g}). "
        f"Wall time {wall_s:.0f} s.",
        "",
        "## Claims and what this study measured",
        "",
        "| claim | measured here | verdict |",
        "|---|---|---|",
        f"| Bagging an unstable learner beats one copy of it (Breiman 1996) | ensemble {ci('ensemble_test_acc')} vs one network "
        f"{ci('single_test_acc')}, paired by seed {gain * 100:+.1f} ± {gain_half * 100:.1f} points "
        f"(members alone {ci('member_test_acc_mean')}) | "
        f"{verdict_bagging} ({k} seeds) |",
        f"| The out-of-bag estimate tracks the test accuracy (Breiman 1996) | OOB {ci('oob_acc')}, {oob_gap * 100:+.1f} points from "
        f"the ensemble's "
        f"test accuracy (each member leaves out {np.mean([r['oob_fraction_per_member'] for r in summaries]):.1%} ≈ 1/e) | "
        f"{'consistent' if abs(oob_gap) < 0.02 else 'off by more than 2 points'} ({len(summaries)} seeds) |",
        f"| Boosting weak learners raises training accuracy round by round (Freund & Schapire 1997) | train "
        f"{ci('train_acc', first_rows)} after 1 round, "
        f"{ci('train_acc', last_rows)} after {last} (paired by seed {rise * 100:+.1f} ± {rise_half * 100:.1f} points); "
        f"test {ci('test_acc', first_rows)} → {ci('test_acc', last_rows)} | {verdict_boosting} ({k_boost} seeds) |",
        "",
        "![bagging and boosting](figures/bagging_boosting.png)",
        "",
        "Files: `results.csv` (accuracy per ensemble size and per boosting round), `summary.csv` (per seed), `figures/`.",
    ]
    write_text_atomic(study_dir / "report.md", "\n".join(lines) + "\n")


def run(cfg: DictConfig, study_dir: Path) -> dict:
    s, clock = cfg.study, Clock()
    check(s)
    check_optimizer(cfg, ("study.bagging.lr", "study.boosting.lr"))
    x, y, xt, yt, classes = data()
    curves, summaries = [], []
    for seed in s.seeds:
        c, summary = cached(study_dir, f"bagging_seed{seed}", lambda: bagging(cfg, seed, x, y, xt, yt, classes))
        curves += c
        summaries.append(summary)
        log.info(
            f"seed {seed}: bagged {summary['ensemble_test_acc']:.4f}, single {summary['single_test_acc']:.4f}, "
            f"OOB {summary['oob_acc']:.4f} ({clock()} s)"
        )
    seeds = list(s.seeds)
    boost = cached(study_dir, f"boosting_seeds{'-'.join(map(str, seeds))}", lambda: samme(cfg, seeds, x, y, xt, yt, classes))
    for seed in seeds:
        mine = [b for b in boost if b["seed"] == seed]
        shown = f"{mine[-1]['test_acc']:.4f} after {mine[-1]['round']} rounds" if mine else "no round better than chance"
        log.info(f"seed {seed}: boosted {shown} ({clock()} s)")
    finish(
        study_dir,
        clock,
        curves + boost,
        summaries,
        lambda writer: figure(curves, boost, summaries, study_dir / "figures", writer),
        lambda wall_s: write_report(study_dir, cfg, summaries, boost, wall_s),
    )
    return {
        "bagged": float(np.mean([r["ensemble_test_acc"] for r in summaries])),
        "single": float(np.mean([r["single_test_acc"] for r in summaries])),
    }
