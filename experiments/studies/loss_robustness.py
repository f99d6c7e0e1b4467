"""Loss robustness (``study=loss_robustness``): MSE, MAE and Huber on regression whose training
targets carry 0–30% gross outliers, one-sided (every outlier above the truth: it moves the
conditional mean, not the median) and symmetric (± : the mean stays, a squared-error fit is only
pulled around); test error on clean data against the outlier fraction, each fit's shift from the
true function, the fitted functions beside the truth, and each loss compared with MSE paired by seed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from callbacks.plot_style import new_figure, palette, save_figure
from core.errors import ConfigError
from core.files import write_text_atomic
from experiments.studies.common import Clock, cached, finish
from experiments.studies.members import check_seeds, load_member, run_members
from lightning_modules.losses import LOSSES
from numerics.intervals import direction, interval, paired

REGRESSION_LOSSES = ("mse", "mae", "huber")
SIDES = ("one", "both")
#: what the study sets per member: the command line may not set it for all of them
PER_MEMBER = ("loss", "loss.name", "data.dataset.outlier_fraction", "data.dataset.outlier_side", "data.normalize")


def member_name(loss: str, fraction: float, side: str) -> str:
    """``mse_outliers0.2`` (symmetric, the study's earlier name), ``mse_outliers0.2_one``; ``mse_outliers0`` (clean)."""
    name = f"{loss}_outliers{fraction:g}"
    return f"{name}_one" if side == "one" and fraction > 0 else name


def grid_of(s: DictConfig) -> dict[str, tuple[str, float, str]]:
    """Every member: (loss, fraction, side); a clean fraction has no side ("none")."""
    out = {}
    for loss in s.losses:
        for f in s.outlier_fractions:
            for side in ["none"] if f == 0 else s.sides:
                out[member_name(loss, f, side)] = (loss, float(f), side)
    return out


def check(s: DictConfig) -> None:
    check_seeds(s.seeds)
    if len(s.seeds) < 2:
        raise ConfigError(f"study.seeds={list(s.seeds)}: the losses are compared paired by seed, which needs at least 2 seeds")
    bad = [x for x in s.losses if x not in REGRESSION_LOSSES or x not in LOSSES]
    if bad or "mse" not in s.losses or len(s.losses) < 2:
        raise ConfigError(
            f"study.losses={list(s.losses)}: MSE is compared with the robust losses; give mse and at least one of "
            f"{', '.join(x for x in REGRESSION_LOSSES if x != 'mse')}" + (f" (unknown: {bad})" if bad else "")
        )
    fractions = list(s.outlier_fractions)
    if not fractions or any(not isinstance(f, (int, float)) or not 0 <= f < 1 for f in fractions) or max(fractions) == 0:
        raise ConfigError(f"study.outlier_fractions={fractions}: each in [0, 1), at least one above 0")
    if not s.sides or any(x not in SIDES for x in s.sides) or len(set(s.sides)) < len(s.sides):
        raise ConfigError(f"study.sides={list(s.sides)}: a non-empty list of distinct values from {', '.join(SIDES)}")
    if not isinstance(s.epochs, int) or s.epochs < 1:
        raise ConfigError(f"study.epochs={s.epochs}: must be an integer >= 1")
    for given in HydraConfig.get().overrides.task if HydraConfig.initialized() else []:
        if given.lstrip("+~").split("=", 1)[0] in PER_MEMBER:
            if given.lstrip("+~").startswith("data.normalize"):
                raise ConfigError(
                    f"{given.lstrip('+~')}: study=loss_robustness measures its fits against the true function, which takes raw "
                    "inputs; leave data.normalize to its recipe (none)"
                )
            raise ConfigError(
                f"{given.lstrip('+~')}: study=loss_robustness sets it per member; use study.losses, study.outlier_fractions, study.sides"
            )


@torch.no_grad()
def shift(member_dir: Path) -> dict:
    """The fit's mean signed distance from the true function on the clean test inputs (> 0: above it)."""
    _, module, dm = load_member(member_dir)
    x, _ = dm.tensors("test")
    truth = torch.from_numpy(dm.info.extras["truth"](x.numpy()))
    return {"shift": float((module(x) - truth).mean())}


def summarize(rows: list[dict], grid: dict) -> list[dict]:
    table = []
    for name, (loss, f, side) in grid.items():
        ms = [r for r in rows if r["member"] == name]
        row = {"loss": loss, "outliers": f, "side": side, "seeds": len(ms)}
        for key in ("test_mse", "test_mae", "shift"):
            mean, _, half = interval(r[key] for r in ms)
            row[key], row[f"{key}_ci"] = mean, half
        table.append(row)
    return table


def label(loss: str) -> str:
    return loss.upper() if loss != "huber" else "Huber"


def error_figure(table: list[dict], s: DictConfig, noise: float, folder: Path, writer) -> None:
    fig, axes = new_figure(1, 1, width=5.0, height=3.5)
    ax = axes[0, 0]
    styles = {"one": "-", "both": "--"}
    for loss, color in zip(s.losses, palette(len(s.losses))):
        for side in s.sides:
            rs = sorted((r for r in table if r["loss"] == loss and r["side"] in (side, "none")), key=lambda r: r["outliers"])
            f = np.array([r["outliers"] for r in rs]) * 100
            m, h = np.array([r["test_mse"] for r in rs]), np.array([r["test_mse_ci"] for r in rs])
            ax.plot(f, m, marker="o", markersize=3.5, color=color, linestyle=styles[side], label=f"{label(loss)}, {side}-sided")
            ax.fill_between(f, np.maximum(m - h, 1e-6), m + h, color=color, alpha=0.15, linewidth=0)
    ax.axhline(noise**2, color="0.5", linestyle=":", linewidth=1)
    ax.text(max(s.outlier_fractions) * 100, noise**2, "noise floor σ² ", ha="right", va="top", fontsize=8, color="0.4")
    ax.set_yscale("log")
    ax.set_xlabel("training targets that are outliers (%)")
    ax.set_ylabel("test MSE on clean data (log scale)")
    ax.legend(loc="upper left", fontsize=7, ncol=2)
    fig.tight_layout()
    save_figure(fig, folder, "test_error_vs_outliers", writer)


@torch.no_grad()
def fits_figure(study_dir: Path, s: DictConfig, fraction: float, folder: Path, writer) -> None:
    """One panel per side: the training data at ``fraction`` (outliers marked), the true function and
    each loss's fit (first seed)."""
    sides = list(s.sides)
    fig, axes = new_figure(1, len(sides), width=4.6, height=3.6)
    grid = torch.linspace(-3, 3, 300).unsqueeze(1)
    for ax, side in zip(axes[0], sides):
        for i, (loss, color) in enumerate(zip(s.losses, palette(len(s.losses)))):
            _, module, dm = load_member(study_dir / "members" / member_name(loss, fraction, side) / f"seed{s.seeds[0]}")
            if i == 0:
                x, y = (t.numpy() for t in dm.tensors("train"))
                truth = dm.info.extras["truth"]
                far = np.isin(dm.split_indices["train"], dm.info.extras["outliers"])  # the generator's own record
                ax.scatter(x[~far, 0], y[~far, 0], s=5, color="0.6", label="training data")
                ax.scatter(x[far, 0], y[far, 0], s=9, marker="x", color="0.25", label="outliers")
                ax.plot(grid[:, 0], truth(grid.numpy())[:, 0], color="black", linewidth=1.2, linestyle="--", label="true function")
                ax.set_ylim(-6.5, 8.5)  # nearly every outlier in view (they lie 3–6 above or below the truth)
            ax.plot(grid[:, 0], module(grid)[:, 0], color=color, linewidth=1.6, label=f"fit: {label(loss)}")
        ax.set_xlabel("x")
        ax.set_ylabel("y")
        ax.set_title(f"{fraction:.0%} outliers, {side}-sided", fontsize=10)
    handles, names = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, names, loc="lower center", fontsize=7, ncol=len(names), frameon=False)
    fig.tight_layout(rect=(0, 0.08, 1, 1))  # room for the legend below the panels
    save_figure(fig, folder, "fitted_functions", writer)


def versus_mse(rows: list[dict], grid: dict, s: DictConfig) -> list[dict]:
    """Each robust loss against MSE at every contaminated fraction and side: MSE's test MSE minus the
    loss's, paired by seed (the members of one seed share its data and order)."""
    of = {name: {r["seed"]: r["test_mse"] for r in rows if r["member"] == name} for name in grid}
    out = []
    for side in s.sides:
        for f in sorted(x for x in s.outlier_fractions if x > 0):
            for loss in (x for x in s.losses if x != "mse"):  # check(): mse and a robust loss are there
                d, h, k = paired(of[member_name("mse", f, side)], of[member_name(loss, f, side)])
                out.append({"side": side, "outliers": f, "loss": loss, "mse_minus_loss": d, "ci": h, "seeds": k})
    return out


def write_report(study_dir: Path, s: DictConfig, table: list[dict], pairs: list[dict], wall_s: float) -> None:
    at = {(r["loss"], r["outliers"], r["side"]): r for r in table}

    def row(loss, f, side):
        return at[loss, f, "none" if f == 0 else side]

    n = f"{len(s.seeds)} seeds"

    def claim_robust(side: str) -> tuple[str, str]:
        mine = [p for p in pairs if p["side"] == side]
        won = [p for p in mine if direction(p["mse_minus_loss"], p["ci"], p["seeds"]) > 0]
        lost = [p for p in mine if direction(p["mse_minus_loss"], p["ci"], p["seeds"]) < 0]
        shown = "; ".join(f"{p['outliers']:.0%}: MSE − {label(p['loss'])} {p['mse_minus_loss']:+.4f} ± {p['ci']:.4f}" for p in mine)
        verdict = (
            "consistent"
            if len(won) == len(mine)
            else "the opposite, beyond the intervals"
            if len(lost) == len(mine)
            else f"{len(won)} of {len(mine)} beyond the interval"
        )
        return shown, f"{verdict} ({n})"

    lines = [
        "# Loss robustness: MSE, MAE and Huber under outliers",
        "",
        f"Recipe `{' '.join(s.recipe)}`, {s.epochs} epochs, seeds {list(s.seeds)}; members: `loss.name` × "
        f"`data.dataset.outlier_fraction` × `data.dataset.outlier_side` ({', '.join(s.sides)}). One-sided outliers all lie "
        "above the truth (+10–20 σ): they move the conditional mean, which squared error estimates, and barely the median, which "
        "absolute error estimates. Symmetric ones (±) leave both in place. A seed puts the outliers on the same points with the "
        "same sizes on either side. Test error on 1,000 clean points, mean ± half-width of the 95% t-interval; shift = the fit's "
        "mean signed distance from the true function on the test inputs; losses compared with MSE paired by seed. Every seed "
        "trains on the same data draw (`data.dataset.seed`), so the intervals cover initialization and batch order, not the data. "
        f"Wall time {wall_s:.0f} s.",
        "",
        "## Claims and what this study measured",
        "",
        "| claim | measured here (test MSE) | verdict |",
        "|---|---|---|",
    ]
    if "one" in s.sides:
        shown, verdict = claim_robust("one")
        lines.append(
            "| Squared error follows one-sided outliers; absolute error (the median) and Huber (bounded influence) resist them "
            f"(Huber 1964) | {shown} | {verdict} |"
        )
    if "both" in s.sides:
        shown, verdict = claim_robust("both")
        lines.append(f"| Under symmetric outliers, which move neither the mean nor the median, MSE still loses | {shown} | {verdict} |")
    dirty = sorted(f for f in s.outlier_fractions if f > 0)
    # check(): mse is among the losses and some fraction is above 0
    parts, said = [], []
    for side in s.sides:
        mse = [row("mse", f, side) for f in dirty]
        parts.append(f"{side}-sided " + ", ".join(f"{r['outliers']:.0%}: {r['shift']:+.3f} ± {r['shift_ci']:.3f}" for r in mse))
        sides = [direction(r["shift"], r["shift_ci"], len(s.seeds)) for r in mse]
        if side == "one":
            said.append("one-sided: " + ("consistent" if all(d > 0 for d in sides) else f"{sides.count(1)} of {len(sides)} up"))
        else:
            said.append("symmetric: " + ("no shift detected" if not any(sides) else f"{len(sides) - sides.count(0)} beyond zero"))
    verdict = "; ".join(said)
    lines.append(
        "| One-sided outliers pull an MSE fit toward them; symmetric ones do not shift it | MSE fit's shift: "
        + "; ".join(parts)
        + f" | {verdict} ({n}) |"
    )
    lines += [
        "",
        "| loss | outliers | side | test MSE (95% CI) | test MAE (95% CI) | shift (95% CI) |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['loss']} | {r['outliers']:.0%} | {r['side']} | {r['test_mse']:.4f} ± {r['test_mse_ci']:.4f} | "
        f"{r['test_mae']:.4f} ± {r['test_mae_ci']:.4f} | {r['shift']:+.3f} ± {r['shift_ci']:.3f} |"
        for r in table
    ]
    lines += [
        "",
        "![test error](figures/test_error_vs_outliers.png)",
        "",
        "![fits](figures/fitted_functions.png)",
        "",
        "Files: `results.csv` (one row per run), `summary.csv` (per loss, outliers and side: `test_mse`, `test_mse_ci`, "
        "`test_mae`, `shift` and their intervals), `figures/`, runs in `members/<loss>_outliers<f>[_one]/seed<k>/`.",
    ]
    write_text_atomic(study_dir / "report.md", "\n".join(lines) + "\n")


def run(cfg: DictConfig, study_dir: Path) -> dict:
    s, clock = cfg.study, Clock()
    check(s)
    grid = grid_of(s)
    overrides = lambda n: [  # noqa: E731
        f"loss.name={grid[n][0]}",
        f"data.dataset.outlier_fraction={grid[n][1]}",
        f"data.dataset.outlier_side={'both' if grid[n][2] == 'none' else grid[n][2]}",
    ]
    rows = run_members(s, study_dir, list(grid), overrides, lambda n: s.epochs)
    for r in rows:
        r["loss"], r["outlier_fraction"], r["side"] = grid[r["member"]]
        here = study_dir / "members" / r["member"] / f"seed{r['seed']}"
        r.update(cached(study_dir, f"shift_{r['member']}_seed{r['seed']}", lambda here=here: shift(here)))
    table = summarize(rows, grid)
    pairs = versus_mse(rows, grid, s)
    first = study_dir / "members" / rows[0]["member"] / f"seed{rows[0]['seed']}" / ".hydra" / "config.yaml"
    noise = float(OmegaConf.load(first).data.dataset.noise)
    dirty = sorted(f for f in s.outlier_fractions if f > 0)

    def draw(writer) -> None:
        error_figure(table, s, noise, study_dir / "figures", writer)
        fits_figure(study_dir, s, dirty[len(dirty) // 2], study_dir / "figures", writer)

    finish(study_dir, clock, rows, table, draw, lambda wall_s: write_report(study_dir, s, table, pairs, wall_s))
    return {"worst_mse": max(r["test_mse"] for r in table)}
