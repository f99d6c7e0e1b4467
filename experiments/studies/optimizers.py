"""The optimizer study: how the optimizers move on 2-D test surfaces (lr tuned per optimizer on a
grid, same step budget) and how they train a real task with each one's lr tuned on validation
(several seeds, compared paired by seed; ``optimizer_task.py``); report.md puts each claim from
the literature next to what was measured."""

from __future__ import annotations

import math
from itertools import product
from pathlib import Path

import numpy as np
import torch
from hydra import compose
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from core.errors import ConfigError
from experiments.studies import optimizer_plots as plots
from experiments.studies import optimizer_task as task
from experiments.studies.common import Clock, finish, log, member_overrides, write_csv
from experiments.studies.members import check_seeds, difference_bars
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
    unknown = [o for o in s.task_optimizers if o not in OPTIMIZERS]
    if unknown or len(set(s.task_optimizers)) < len(s.task_optimizers):
        raise ConfigError(
            f"study.task_optimizers={list(s.task_optimizers)}: distinct optimizers ([] for the surfaces only); unknown {unknown}; "
            f"valid: {', '.join(OPTIMIZERS.list())}"
        )
    if s.task_optimizers:
        check_seeds(s.seeds)
        check_seeds(s.tune_seeds, "study.tune_seeds")
        if len(set(s.seeds)) < len(s.seeds) or len(set(s.tune_seeds)) < len(s.tune_seeds):
            raise ConfigError(
                f"study.seeds={list(s.seeds)} study.tune_seeds={list(s.tune_seeds)}: a seed is repeated; each must be distinct"
            )
        if len(s.seeds) < 2:
            raise ConfigError(
                f"study.seeds={list(s.seeds)}: the tuned optimizers are compared paired by seed, which needs at least 2 seeds"
            )
        if set(s.seeds) & set(s.tune_seeds):
            raise ConfigError(
                f"study.tune_seeds={list(s.tune_seeds)}: must not share a seed with study.seeds={list(s.seeds)} (the lr is chosen on "
                "runs of its own, then measured on fresh ones)"
            )
        factors = list(s.lr_factors)
        if (
            not factors
            or any(isinstance(x, bool) or not isinstance(x, (int, float)) or x <= 0 for x in factors)
            or len(set(factors)) < len(factors)
        ):
            raise ConfigError(
                f"study.lr_factors={factors}: must be a non-empty list of distinct numbers > 0 (× each optimizer's config lr)"
            )
    for given in HydraConfig.get().overrides.task if HydraConfig.initialized() else []:
        key = given.lstrip("+~").split("=", 1)[0]
        if key == "optimizer" or key.startswith("optimizer.") or key == "tune.apply":
            raise ConfigError(
                f"{given.lstrip('+~')}: study=optimizers sets each member's optimizer and tunes its lr; use study.optimizers, "
                "study.task_optimizers, study.lr_factors"
            )
        if key == "run_test":  # the candidates never score the test split, the compared members always do
            raise ConfigError(f"{given.lstrip('+~')}: study=optimizers sets it per stage (false while tuning the lr, true to compare)")
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


def run(cfg: DictConfig, study_dir: Path) -> dict:
    s, clock = cfg.study, Clock()
    check(s)
    hparams = {name: optimizer_hparams(name) for name in dict.fromkeys([*s.optimizers, *s.task_optimizers])}
    figures = study_dir / "figures"

    log.info(
        f"2-D surfaces: {len(s.surfaces)} × {len(s.optimizers)} optimizers × {len(s.lr_grid)} learning rates, {s.surface_steps} steps each"
    )
    surface_rows, best = surfaces_part(s, hparams)
    write_csv(study_dir / "surfaces.csv", surface_rows)
    log.info(f"surfaces done ({clock()} s)")

    tuning, chosen, members, histories, table = [], {}, [], {}, []
    if s.task_optimizers:
        log.info(
            f"real task: {len(s.task_optimizers)} optimizers × {len(s.lr_factors)} learning rates on seeds {list(s.tune_seeds)} "
            f"(validation only), then seeds {list(s.seeds)} at each one's tuned lr"
        )
        tuning, chosen = task.tune(s, study_dir, hparams)
        write_csv(study_dir / "tuning.csv", tuning)
        for name, c in chosen.items():
            edge = " (at the grid's edge)" if c["at_grid_edge"] else ""
            log.info(f"{name}: lr {c['lr']:g} = {c['lr_factor']:g} × its config's{edge}, val acc {c['tune_val_acc']:.4f}")
        members, histories, table = task.compare(s, study_dir, chosen)

    def draw(writer) -> None:
        for sname in s.surfaces:
            plots.trajectories(SURFACES[sname], {o: best[sname, o] for o in s.optimizers}, figures, writer)
        plots.surface_losses(s.surfaces, s.optimizers, best, FAMILIES, figures, writer)
        if table:
            plots.lr_tuning(tuning, chosen, figures, writer)
            plots.learning_curves(histories, FAMILIES, figures, writer)
            plots.test_accuracy(table, figures, writer)
            if task.BASELINE in chosen and len(table) > 1:
                others = [r for r in table if r["optimizer"] != task.BASELINE]
                xlabel = f"test accuracy − tuned {task.BASELINE}'s, paired by seed (points; 95% interval)"
                difference_bars(others, "optimizer", f"vs_{task.BASELINE}", f"vs_{task.BASELINE}_ci95", xlabel, figures,
                                f"test_accuracy_vs_{task.BASELINE}", writer)  # fmt: skip

    from experiments.studies.optimizers_report import write_report

    # the ending every study shares: results.csv, summary.csv, the figures, the report, the marker last
    finish(
        study_dir,
        clock,
        members,
        table,
        draw,
        lambda wall_s: write_report(study_dir, cfg, surface_rows, table, members, hparams.get("sam", {}).get("base", ""), wall_s=wall_s),
    )
    if not table:
        return {"surfaces": len(surface_rows)}
    return {"best": table[0]["optimizer"], "val_acc_mean": table[0]["val_acc_mean"]}
