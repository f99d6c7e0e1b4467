"""The optimizer study's real task, compared fairly (as DeepOBS and AlgoPerf do): each optimizer's lr
is tuned on validation (``study.tune_seeds``, ``run_test=false``) over ``study.lr_factors`` × its
config's lr, an lr whose loss stops being finite counting as the worst candidate; then every
optimizer trains ``study.seeds`` at its tuned lr and is compared on test, paired by seed."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
from omegaconf import DictConfig, OmegaConf

from core.errors import ConfigError
from experiments.studies.common import DIVERGED, read_csv
from experiments.studies.members import run_members
from experiments.train import TrainingFailed
from numerics.intervals import interval, paired

BASELINE = "momentum"  # the tuned optimizer every other is compared with, paired by seed (Wilson et al.'s "well-tuned SGD")
LOSS_MARK = 0.1  # "epochs to train loss < LOSS_MARK": how fast each drives the training loss down


def grid_lr(config_lr: float, factor: float) -> float:
    return float(f"{config_lr * factor:.4g}")  # 0.02 × 3 → 0.06, not 0.06000000000000001 (the override and the directory name)


def tune(s: DictConfig, study_dir: Path, hparams: dict) -> tuple[list[dict], dict[str, dict]]:
    """Every (optimizer, factor) on the tuning seeds: the rows of ``tuning.csv`` and, per optimizer,
    the lr chosen (highest mean best-val accuracy; ties go to the smaller lr)."""
    candidates = {}
    for name in s.task_optimizers:
        for factor in sorted(s.lr_factors):
            lr = grid_lr(hparams[name]["lr"], factor)
            if f"tune/{name}/lr{lr:g}" in candidates:
                raise ConfigError(f"study.lr_factors={list(s.lr_factors)}: two factors give {name} the same lr {lr:g}; space them further")
            candidates[f"tune/{name}/lr{lr:g}"] = (name, float(factor), lr)
    searched = OmegaConf.merge(s, {"seeds": list(s.tune_seeds)})
    rows = run_members(
        searched,
        study_dir,
        list(candidates),
        lambda c: [f"optimizer={candidates[c][0]}", f"optimizer.lr={candidates[c][2]}", "run_test=false"],
        lambda c: None,
        may_diverge=True,
    )
    out = []
    for row in rows:
        name, factor, lr = candidates[row["member"]]
        val = ""
        if "diverged" not in row:
            record = json.loads((study_dir / "members" / row["member"] / f"seed{row['seed']}" / "metrics.json").read_text())
            if record.get("val/acc_best") is None:
                raise ConfigError(
                    f"study=optimizers: the lr is chosen by validation accuracy, and model={record['model']} here has none "
                    "(a regression task, or no validation split: data.val_fraction=0); use a classification dataset with one"
                )
            val = record["val/acc_best"]
        out.append({"optimizer": name, "lr_factor": factor, "lr": lr, "seed": row["seed"], "val_acc_best": val, "diverged": int(val == "")})
    return out, {name: choose(name, [r for r in out if r["optimizer"] == name]) for name in s.task_optimizers}


def choose(name: str, rows: list[dict]) -> dict:
    """The lr of ``rows`` (one optimizer's candidates) with the highest mean validation accuracy over
    the tuning seeds; a candidate that diverged on any seed is the worst."""
    by_lr: dict[float, list[dict]] = {}
    for r in rows:
        by_lr.setdefault(r["lr"], []).append(r)
    score = {
        lr: -math.inf if any(r["diverged"] for r in rs) else float(np.mean([r["val_acc_best"] for r in rs])) for lr, rs in by_lr.items()
    }
    lrs = sorted(score)
    best = max(lrs, key=lambda lr: score[lr])  # the first (smallest lr) of equal scores
    if score[best] == -math.inf:
        raise TrainingFailed(
            f"study.lr_factors: every lr tried for {name} ({', '.join(f'{lr:g}' for lr in lrs)}) diverged on the tuning seeds; "
            "add smaller factors (the finished candidates are kept: study.resume=true)"
        )
    factor = by_lr[best][0]["lr_factor"]
    at_one = next((score[lr] for lr in lrs if by_lr[lr][0]["lr_factor"] == 1.0), None)
    return {
        "config_lr": grid_lr(best, 1 / factor),
        "lr": best,
        "lr_factor": factor,
        "tune_val_acc": score[best],
        "tune_val_acc_config_lr": "" if at_one is None or at_one == -math.inf else at_one,
        "at_grid_edge": int(len(lrs) > 1 and best in (lrs[0], lrs[-1])),
        "diverged_lrs": " ".join(f"{lr:g}" for lr in lrs if score[lr] == -math.inf),
    }


def member_row(name: str, seed: int, lr: float, record: dict, history: list[dict]) -> dict:
    losses = [h["train/loss"] for h in history]
    below = [h["epoch"] for h in history if h["train/loss"] < LOSS_MARK]
    return {
        "optimizer": name,
        "seed": seed,
        "lr": lr,
        "val_acc_final": history[-1].get("val/acc"),
        "val_acc_best": record.get("val/acc_best"),
        "test_acc": record.get("test/acc"),
        "train_loss_final": losses[-1],
        f"epochs_to_train_loss_{LOSS_MARK:g}": int(below[0]) if below else "",
        "epochs": record["epochs"],
        "wall_s": record["wall_s"],
    }


def compare(s: DictConfig, study_dir: Path, chosen: dict[str, dict]) -> tuple[list[dict], dict[str, list], list[dict]]:
    """``study.seeds`` of every optimizer at its tuned lr (each one's seeds one fit): the member rows,
    their histories by optimizer and the summary table, sorted by mean validation accuracy."""
    names = list(s.task_optimizers)
    try:
        rows = run_members(s, study_dir, names, lambda n: [f"optimizer={n}", f"optimizer.lr={chosen[n]['lr']}"], lambda n: None)
    except TrainingFailed as exc:
        gone = [n for n in names if any((study_dir / "members" / n).rglob(DIVERGED))]
        if not gone:
            raise
        which = ", ".join(f"{n} ({chosen[n]['lr']:g})" for n in gone)
        raise TrainingFailed(
            f"study=optimizers: the tuned lr of {which} diverged on a "
            f"compared seed ({' '.join(str(exc).split())[:200]}); an lr some seeds cannot train at won the tuning: add "
            "study.tune_seeds or smaller study.lr_factors and start a new study"
        ) from exc
    members, histories = [], {}
    for row in rows:  # optimizer-major, seeds in order
        name, seed = row["member"], row["seed"]
        here = study_dir / "members" / name / f"seed{seed}"
        record, history = json.loads((here / "metrics.json").read_text()), read_csv(here / "history.csv")
        histories.setdefault(name, []).append(history)
        members.append(member_row(name, seed, chosen[name]["lr"], record, history))
    if any(m["test_acc"] is None for m in members):
        raise ConfigError("study=optimizers: the compared members have no test accuracy (no test split: data.test_fraction=0?)")
    return members, histories, summarize(members, chosen)


def test_by_seed(members: list[dict], name: str) -> dict[int, float]:
    return {m["seed"]: m["test_acc"] for m in members if m["optimizer"] == name}


def summarize(members: list[dict], chosen: dict[str, dict]) -> list[dict]:
    out = []
    for name, tuned in chosen.items():
        ms = [m for m in members if m["optimizer"] == name]
        test, _, half = interval(m["test_acc"] for m in ms)
        row = {"optimizer": name, **tuned, "seeds": len(ms)}
        row["val_acc_mean"] = float(np.mean([m["val_acc_best"] for m in ms]))
        row["test_acc_mean"], row["test_acc_ci95"] = test, half
        if BASELINE in chosen:
            d, d_half, n = paired(test_by_seed(members, name), test_by_seed(members, BASELINE))
            row[f"vs_{BASELINE}"], row[f"vs_{BASELINE}_ci95"], row["paired_seeds"] = d, d_half, n
        key = f"epochs_to_train_loss_{LOSS_MARK:g}"
        reached = float(np.median([math.inf if m[key] == "" else m[key] for m in ms]))  # a seed that never got there: ∞
        row["train_loss_median"] = float(np.median([m["train_loss_final"] for m in ms]))
        row[key] = "" if reached == math.inf else reached
        row["wall_s_median"] = float(np.median([m["wall_s"] for m in ms]))
        out.append(row)
    return sorted(out, key=lambda r: -r["val_acc_mean"])
