"""The optimizer study: how the optimizers move on 2-D test surfaces (lr tuned per optimizer on a
grid, same step budget) and how they train the real task (several seeds); report.md puts each
textbook claim next to what was measured."""

from __future__ import annotations

import json
import math
from itertools import product
from pathlib import Path

import numpy as np
import torch
from hydra import compose
from omegaconf import DictConfig, OmegaConf

from core.errors import ConfigError
from experiments.studies import optimizer_plots as plots
from experiments.studies.common import Clock, finish, log, member_overrides, read_csv, write_csv
from experiments.studies.members import check_seeds, run_members
from experiments.studies.optimizer_families import FAMILIES
from experiments.studies.surfaces import SURFACES, effective_lr, optimize, values
from lightning_modules.optimizers import OPTIMIZERS, optimizer_factory

CONVERGED = 1e-2  # f below this counts as having reached the minimum (all surfaces have f* = 0)


def check(s: DictConfig) -> None:
    unknown = [o for o in s.optimizers if o not in OPTIMIZERS]
    if unknown or not s.optimizers:
        raise ConfigError(f"study.optimizers={list(s.optimizers)}: unknown {unknown}; valid: {', '.join(OPTIMIZERS.list())}")
    if any(x not in SURFACES for x in s.surfaces):
        raise ConfigError(f"study.surfaces={list(s.surfaces)}: valid: {', '.join(SURFACES)}")
    check_seeds(s.seeds)
    if not s.lr_grid or any(not isinstance(x, (int, float)) or x <= 0 for x in s.lr_grid):
        raise ConfigError(f"study.lr_grid={list(s.lr_grid)}: must be a non-empty list of numbers > 0")
    if not isinstance(s.surface_steps, int) or s.surface_steps < 10:
        raise ConfigError(f"study.surface_steps={s.surface_steps}: must be an integer >= 10")


def optimizer_hparams(name: str) -> dict:
    """The optimizer's own config (as a member run would get it), without its name."""
    cfg = compose(config_name="train", overrides=member_overrides(f"optimizer={name}"))
    hp = OmegaConf.to_container(cfg.optimizer, resolve=True)
    hp.pop("name")
    return hp


def stall_step(path: np.ndarray, surface) -> int | None:
    """Where an optimizer slows to a crawl short of a minimum, or None.

    Stalled: it ends ≥ 0.05 from the nearest minimum and, at the speed of its last fifth of the
    budget, would need more than another whole budget to get there. The step marked is the first
    one after which its speed (over windows of a tenth of the budget) stays below 3× that speed."""
    if np.isnan(path[-1]).any():
        return None
    steps = len(path) - 1
    remaining = min(math.dist(path[-1], m) for m in surface.minima)
    w = max(1, steps // 5)
    speed = np.linalg.norm(path[-1] - path[-1 - w]) / w
    if remaining < 0.05 or remaining <= speed * steps:
        return None
    v = max(1, steps // 10)
    window = np.linalg.norm(path[v:] - path[:-v], axis=1) / v  # speed over [t, t + v]
    fast = np.flatnonzero(window >= 3 * speed)
    return int(fast[-1] + 1) if len(fast) else 0


def surfaces_part(s: DictConfig, hparams: dict) -> tuple[list[dict], dict]:
    rows, best = [], {}
    for sname, oname in product(s.surfaces, s.optimizers):
        surface, winner = SURFACES[sname], None
        for lr in s.lr_grid:
            path = optimize(surface, optimizer_factory(oname, **{**hparams[oname], "lr": float(lr)}), s.surface_steps)
            f = values(surface, path).numpy()
            final = f[-1] if np.isfinite(f[-1]) else math.inf
            if winner is None or final < winner[0]:
                winner = (final, float(lr), path.numpy(), f)
        final, lr, path, f = winner
        above = np.flatnonzero(~(f < CONVERGED))  # f stays below the threshold after the last of these
        reached = int(above[-1] + 1) if len(above) else 0
        stall = stall_step(path, surface)
        eff = effective_lr(surface, torch.from_numpy(path)).numpy()
        tail = eff[-max(1, len(eff) // 10) :]
        tail = tail[np.isfinite(tail)]
        best[sname, oname] = {"lr": lr, "path": path, "f": f, "stall": stall}
        rows.append(
            {
                "surface": sname,
                "optimizer": oname,
                "lr": lr,
                "final_f": final,
                "steps_to_converge": reached if reached < len(f) else "",
                "stall_step": "" if stall is None else stall,
                # the effective lr |Δp|/|∇f| over the last tenth of the steps, as a multiple of the nominal lr
                "end_eff_lr_ratio": float(np.median(tail) / lr) if len(tail) else "",
            }
        )
    return rows, best


def summarize(members: list[dict]) -> list[dict]:
    """One row per optimizer: medians and ranges over seeds."""
    out = []
    for name in dict.fromkeys(m["optimizer"] for m in members):
        ms = [m for m in members if m["optimizer"] == name]

        def med(key):  # noqa: E306
            vals = [m[key] for m in ms if m.get(key) not in (None, "")]
            return float(np.median(vals)) if vals else math.nan

        vals = [m["val_acc_final"] for m in ms]
        out.append(
            {
                "optimizer": name,
                "lr": ms[0]["lr"],
                "seeds": len(ms),
                "val_acc_median": med("val_acc_final"),
                "val_acc_min": min(vals),
                "val_acc_max": max(vals),
                "val_acc_best_median": med("val_acc_best"),
                "test_acc_median": med("test_acc"),
                "train_loss_median": med("train_loss_final"),
                "epochs_to_train_loss_0.05": med("epochs_to_train_loss_0.05"),
                "wall_s_median": med("wall_s"),
            }
        )
    return sorted(out, key=lambda r: -r["val_acc_median"])


def member_row(name: str, seed: int, lr: float, record: dict, history: list[dict]) -> dict:
    losses = [h["train/loss"] for h in history]
    below = [h["epoch"] for h in history if h["train/loss"] < 0.05]
    return {
        "optimizer": name,
        "seed": seed,
        "lr": lr,
        "val_acc_final": history[-1].get("val/acc"),
        "val_acc_best": record.get("val/acc_best"),
        "test_acc": record.get("test/acc"),
        "train_loss_final": losses[-1],
        "epochs_to_train_loss_0.05": int(below[0]) if below else "",
        "epochs": record["epochs"],
        "wall_s": record["wall_s"],
    }


def run(cfg: DictConfig, study_dir: Path) -> dict:
    s, clock = cfg.study, Clock()
    check(s)
    hparams = {name: optimizer_hparams(name) for name in s.optimizers}
    figures = study_dir / "figures"

    log.info(
        f"2-D surfaces: {len(s.surfaces)} × {len(s.optimizers)} optimizers × {len(s.lr_grid)} learning rates, {s.surface_steps} steps each"
    )
    surface_rows, best = surfaces_part(s, hparams)
    write_csv(study_dir / "surfaces.csv", surface_rows)
    log.info(f"surfaces done ({clock()} s)")

    rows = run_members(s, study_dir, list(s.optimizers), lambda name: [f"optimizer={name}"], lambda name: None)
    members, histories = [], {}
    for row in rows:  # optimizer-major, seeds in order
        name, seed = row["member"], row["seed"]
        here = study_dir / "members" / name / f"seed{seed}"
        record, history = json.loads((here / "metrics.json").read_text()), read_csv(here / "history.csv")
        histories.setdefault(name, []).append(history)
        members.append(member_row(name, seed, hparams[name]["lr"], record, history))
    table = summarize(members)

    def draw(writer) -> None:
        for sname in s.surfaces:
            plots.trajectories(SURFACES[sname], {o: best[sname, o] for o in s.optimizers}, figures, writer)
        plots.surface_losses(s.surfaces, s.optimizers, best, FAMILIES, figures, writer)
        plots.learning_curves(histories, FAMILIES, figures, writer)
        plots.final_bars(table, figures, writer)

    from experiments.studies.optimizers_report import write_report

    # the ending every study shares: results.csv, summary.csv, the figures, the report, the marker last
    finish(study_dir, clock, members, table, draw, lambda wall_s: write_report(study_dir, cfg, surface_rows, table, wall_s=wall_s))
    return {"best": table[0]["optimizer"], "val_acc_median": table[0]["val_acc_median"]}
