"""K-fold model selection (``study=kfold``): each candidate value of ``study.param`` is trained on
K−1 folds of the training pool and scored on the held-out fold (``run_test=false``: the test split
is never scored during selection); the value with the best mean fold accuracy is refitted on the
whole pool and scored once on the test split. Every other candidate is refitted too, afterwards,
so the report can show how close the selection came to the best test score — for reference only."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from omegaconf import DictConfig, OmegaConf

from callbacks.plot_style import new_figure, palette, save_figure
from core.errors import ConfigError
from core.files import write_text_atomic
from experiments.studies.common import Clock, finish, read_csv
from experiments.studies.launch import launch_keys
from experiments.studies.members import check_seeds, run_members
from numerics.intervals import interval


def check(s: DictConfig) -> None:
    check_seeds(s.seeds)
    if not isinstance(s.k, int) or s.k < 2:
        raise ConfigError(f"study.k={s.k}: must be an integer >= 2")
    if not s.candidates or len(set(map(str, s.candidates))) != len(s.candidates):
        raise ConfigError(f"study.candidates={list(s.candidates)}: a non-empty list of distinct values")
    if not isinstance(s.param, str) or "=" in s.param or not s.param:
        raise ConfigError(f"study.param={s.param!r}: a config key such as optimizer.lr")


def fold_accuracy(study_dir: Path, name: str, seed: int) -> float:
    """The held-out fold's accuracy after the last epoch (from the member's history)."""
    return float(read_csv(study_dir / "members" / name / f"seed{seed}" / "history.csv")[-1]["val/acc"])


def write_report(study_dir: Path, s: DictConfig, cv: list[dict], refits: list[dict], winner: str, wall_s: float) -> None:
    best_test = max(refits, key=lambda r: r["test_acc_mean"])
    chosen = next(r for r in refits if r["value"] == winner)
    shortfall = (best_test["test_acc_mean"] - chosen["test_acc_mean"]) * 100
    verdict = "found it" if best_test["value"] == winner else f"is {shortfall:.1f} points below it"
    lines = [
        "# K-fold model selection",
        "",
        f"`{s.param}` chosen from {list(s.candidates)} by {s.k}-fold cross-validation on the training pool (recipe "
        f"`{' '.join(s.recipe) or 'the default experiment'}`, seed {s.cv_seed}, `run_test=false`: the test split is never scored "
        f"while choosing). The winner is refitted on the whole pool (seeds {list(s.seeds)}) and scored once on the test split. "
        f"Wall time {wall_s:.0f} s.",
        "",
        f"**Selected: `{s.param}={winner}`**, mean fold accuracy {next(r for r in cv if r['value'] == winner)['fold_acc_mean']:.4f}; "
        f"refitted test accuracy {chosen['test_acc_mean']:.4f} ± {chosen['test_acc_ci95']:.4f} (95% CI). The best candidate "
        f"on the test split, known only afterwards, is `{best_test['value']}` at {best_test['test_acc_mean']:.4f}: the selection "
        f"{verdict}.",
        "",
        "## Cross-validation (held-out fold accuracy after the last epoch)",
        "",
        "| value | " + " | ".join(f"fold {i}" for i in range(s.k)) + " | mean ± std |",
        "|---|" + "---|" * s.k + "---|",
    ]
    for r in cv:
        lines.append(
            f"| {r['value']}{' ←' if r['value'] == winner else ''} | "
            + " | ".join(f"{a:.4f}" for a in r["folds"])
            + f" | {r['fold_acc_mean']:.4f} ± {r['fold_acc_std']:.4f} |"
        )
    lines += [
        "",
        "## Refits on the whole pool, scored on the test split",
        "",
        "| value | test acc (95% CI) | used for the selection |",
        "|---|---|---|",
    ]
    lines += [
        f"| {r['value']} | {r['test_acc_mean']:.4f} ± {r['test_acc_ci95']:.4f} | "
        f"{'yes: the winner' if r['value'] == winner else 'no (reference)'} |"
        for r in refits
    ]
    lines += [
        "",
        "![cross-validation](figures/cross_validation.png)",
        "",
        "Files: `results.csv` (every member), `summary.csv`, `figures/`, runs in `members/`.",
    ]
    write_text_atomic(study_dir / "report.md", "\n".join(lines) + "\n")


def figure(s: DictConfig, cv: list[dict], refits: list[dict], winner: str, folder: Path, writer) -> None:
    fig, axes = new_figure(1, 1, width=5.0, height=3.4)
    ax = axes[0, 0]
    c_cv, c_test = palette(2)
    x = np.arange(len(cv))
    for i, r in enumerate(cv):
        ax.scatter(np.full(len(r["folds"]), i - 0.08), r["folds"], s=10, color=c_cv, alpha=0.5)
    ax.errorbar(
        x - 0.08,
        [r["fold_acc_mean"] for r in cv],
        yerr=[r["fold_acc_std"] for r in cv],
        fmt="o-",
        color=c_cv,
        capsize=3,
        label=f"{s.k}-fold CV (folds, mean ± std)",
    )
    ax.errorbar(
        x + 0.08,
        [r["test_acc_mean"] for r in refits],
        yerr=[r["test_acc_ci95"] for r in refits],
        fmt="s--",
        color=c_test,
        capsize=3,
        label="refit, test split (95% CI)",
    )
    w = [r["value"] for r in cv].index(winner)
    ax.axvline(w, color="0.6", linestyle=":", linewidth=1)
    ax.text(w, ax.get_ylim()[1], " selected", fontsize=8, color="0.4", va="top")
    ax.set_xticks(x, [r["value"] for r in cv])
    ax.set_xlabel(s.param)
    ax.set_ylabel("accuracy")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=2, fontsize=8)  # below the axes: never over the data
    fig.tight_layout()
    save_figure(fig, folder, "cross_validation", writer)


def run(cfg: DictConfig, study_dir: Path) -> dict:
    s, clock = cfg.study, Clock()
    check(s)
    values = [str(v) for v in s.candidates]
    folds = {f"cv_{v}_fold{i}": (v, i) for v in values for i in range(s.k)}
    cv_s = OmegaConf.create({"recipe": list(s.recipe), "seeds": [s.cv_seed], **launch_keys(s)})

    def cv_overrides(n):
        return [
            f"{s.param}={folds[n][0]}",
            f"data.kfold.k={s.k}",
            f"data.kfold.index={folds[n][1]}",
            "data.val_fraction=0",
            "run_test=false",
        ]

    def epochs(n):
        return None  # every member runs the recipe's epochs

    rows = run_members(cv_s, study_dir, list(folds), cv_overrides, epochs)
    cv = []
    for v in values:
        accs = [fold_accuracy(study_dir, f"cv_{v}_fold{i}", s.cv_seed) for i in range(s.k)]
        cv.append({"value": v, "folds": accs, "fold_acc_mean": float(np.mean(accs)), "fold_acc_std": float(np.std(accs, ddof=1))})
    winner = max(cv, key=lambda r: r["fold_acc_mean"])["value"]
    refit_names = {f"refit_{v}": v for v in [winner, *[v for v in values if v != winner]]}  # the winner first
    rows += run_members(
        s, study_dir, list(refit_names), lambda n: [f"{s.param}={refit_names[n]}", "data.val_fraction=0", "test_ckpt=last"], epochs
    )
    refits = []
    for n, v in refit_names.items():
        mean, _, half = interval(r["test_acc"] for r in rows if r["member"] == n)
        refits.append({"value": v, "test_acc_mean": mean, "test_acc_ci95": half})
    refits.sort(key=lambda r: values.index(r["value"]))
    table = [
        {
            **{k: v for k, v in c.items() if k != "folds"},
            **{f"fold{i}": a for i, a in enumerate(c["folds"])},
            **{k: v for k, v in r.items() if k != "value"},
            "selected": c["value"] == winner,
        }
        for c, r in zip(cv, refits)
    ]
    finish(
        study_dir,
        clock,
        rows,
        table,
        lambda writer: figure(s, cv, refits, winner, study_dir / "figures", writer),
        lambda wall_s: write_report(study_dir, s, cv, refits, winner, wall_s),
    )
    return {"selected": f"{s.param}={winner}", "test_acc_mean": next(r for r in refits if r["value"] == winner)["test_acc_mean"]}
