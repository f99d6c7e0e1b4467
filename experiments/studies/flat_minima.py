"""Flat minima, side by side (``study=flat_minima``): the methods said to find flat minima, on one
task and one epoch budget — small and large batches (Keskar et al. 2017), SAM on the large batch
(Foret et al. 2021), SWA and EMA on the small batch (Izmailov et al. 2018; Polyak & Juditsky
1992), and the large batch with its lr scaled by √(batch ratio) (Hoffer et al. 2017). Every
member's final weights are probed (callbacks.sharpness, callbacks.hessian) and drawn along a
filter-normalized direction (numerics/landscape.py); small and large also on a plane, and the line
between them. Each claim is decided by paired differences over seeds."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from callbacks.landscape_plots import contour_panel, interpolation_figure
from callbacks.plot_style import new_figure, palette, save_figure
from core.errors import ConfigError
from core.files import write_json_atomic
from experiments.studies.common import Clock, finish, log
from experiments.studies.members import check_seeds, chosen, load_member, run_members
from numerics.intervals import direction, interval, paired

BASELINE = "small"
MEASURED_BY = ("test_ckpt", "run_test")  # what the study's recipe sets for its measurements: refused on the command line
MEASURES = {  # summary key → (the member record's key, what it is)
    "test_acc": ("test/acc", "test accuracy"),
    "gap": (None, "train − test accuracy"),
    "hessian_top1": ("hessian/top1", "top Hessian eigenvalue"),
    "hessian_trace": ("hessian/trace", "Hessian trace"),
    "sign_ascent": ("sharpness/sign_ascent", "ε-sharpness (sign ascent, %)"),
    "loss_rise": (None, "train-loss rise at the 1-D line's ends"),
}


def check(s: DictConfig) -> list[str]:
    check_seeds(s.seeds, distinct=True)
    if len(s.seeds) < 2:
        raise ConfigError(
            f"study.seeds={list(s.seeds)}: every member is compared with '{BASELINE}' paired by seed, which needs at least 2 seeds"
        )
    if BASELINE not in s.members:
        raise ConfigError(f"study.members: must hold '{BASELINE}', the baseline every member is compared with")
    names = chosen(s)
    if BASELINE not in names:
        names = [BASELINE, *names]  # the baseline of every comparison: always trained
    if not isinstance(s.epochs, int) or s.epochs < 1:
        raise ConfigError(f"study.epochs={s.epochs}: must be an integer >= 1")
    if not isinstance(s.swa_start_fraction, (int, float)) or not 0 <= s.swa_start_fraction < 1:
        raise ConfigError(f"study.swa_start_fraction={s.swa_start_fraction}: must be a number in [0, 1)")
    land = s.landscape
    if not isinstance(land.points, int) or land.points < 3 or land.points % 2 == 0:
        raise ConfigError(f"study.landscape.points={land.points}: must be an odd integer >= 3 (α = 0 is a point)")
    for given in HydraConfig.get().overrides.task if HydraConfig.initialized() else []:
        key = given.lstrip("+~").split("=", 1)[0]
        if key in MEASURED_BY or key in ("callbacks.hessian.enabled", "callbacks.sharpness.enabled"):
            raise ConfigError(
                f"{given.lstrip('+~')}: study=flat_minima measures every member's final weights with its recipe's probes "
                "(test_ckpt=last, run_test, callbacks.hessian, callbacks.sharpness); leave them to it"
            )
    if not isinstance(land.span, (int, float)) or land.span <= 0:
        raise ConfigError(f"study.landscape.span={land.span}: must be a number > 0")
    return names


def lines(study_dir: Path, rows: list[dict], s: DictConfig) -> dict[str, dict]:
    """Every member's train loss along its own filter-normalized direction (seeded alike); cached."""
    from numerics.landscape import Surface, filter_normalized_direction, weights_of

    path = study_dir / "parts" / "landscape_lines.json"
    settings = {"span": float(s.landscape.span), "points": int(s.landscape.points), "direction_seed": 0}
    saved = json.loads(path.read_text()) if path.exists() else {}
    found = saved.get("lines", {}) if saved.get("settings") == settings else {}  # other settings: drawn again
    alphas = np.linspace(-s.landscape.span, s.landscape.span, s.landscape.points)
    for r in rows:
        label = f"{r['member']}/seed{r['seed']}"
        if label in found:
            continue
        _, module, dm = load_member(study_dir / "members" / r["member"] / f"seed{r['seed']}")
        x, y = dm.tensors("train")
        w = weights_of(module.net)
        losses, _ = Surface(module.net, module.loss_fn, x, y).line(w, filter_normalized_direction(w, 0), alphas)
        found[label] = losses.tolist()
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, {"settings": settings, "lines": found}, indent=None)
    return {f"{r['member']}/seed{r['seed']}": found[f"{r['member']}/seed{r['seed']}"] for r in rows}  # this run's members only


def planes(study_dir: Path, s: DictConfig, pair: list[str]) -> tuple[dict, dict]:
    """The train-loss plane of each of ``pair`` (first seed) and the train/test loss on the line between them."""
    from numerics.landscape import Surface, filter_normalized_direction, weights_of

    path = study_dir / "parts" / "landscape_planes.json"
    seed = s.seeds[0]
    settings = {"span": float(s.landscape.span), "points": int(s.landscape.points), "seed": int(seed), "pair": list(pair)}
    if path.exists():
        saved = json.loads(path.read_text())
        if saved.get("settings") == settings:
            return saved["planes"], saved["between"]
    alphas = np.linspace(-s.landscape.span, s.landscape.span, s.landscape.points)
    loaded = {n: load_member(study_dir / "members" / n / f"seed{seed}") for n in pair}
    out = {}
    for n, (_, module, dm) in loaded.items():
        x, y = dm.tensors("train")
        w = weights_of(module.net)
        grid, _ = Surface(module.net, module.loss_fn, x, y).plane(
            w, filter_normalized_direction(w, 0), filter_normalized_direction(w, 1), alphas
        )
        out[n] = grid.tolist()
    (_, first, dm), (_, second, _) = loaded[pair[0]], loaded[pair[1]]
    between = {"alphas": np.linspace(-0.5, 1.5, s.landscape.points).tolist()}
    for split in ("train", "test"):
        x, y = dm.tensors(split)
        losses, _ = Surface(first.net, first.loss_fn, x, y).between(
            weights_of(first.net), weights_of(second.net), np.array(between["alphas"])
        )
        between[split] = losses.tolist()
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, {"settings": settings, "planes": out, "between": between}, indent=None)
    return out, between


def overrides_of(s: DictConfig, name: str) -> list[str]:
    """The member's overrides; SWA (``regularization.swa_lr`` without ``swa_start``) starts after
    ``study.swa_start_fraction`` of ``study.epochs``."""
    given = list(s.members[name])
    keys = {o.lstrip("+~").split("=", 1)[0] for o in given}
    if "regularization.swa_lr" in keys and "regularization.swa_start" not in keys:
        given.append(f"regularization.swa_start={int(s.swa_start_fraction * s.epochs) + 1}")
    return given


def summarize(rows: list[dict], names: list[str]) -> list[dict]:
    table = []
    base = {key: {r["seed"]: r[key] for r in rows if r["member"] == BASELINE} for key in MEASURES}
    for name in names:
        ms = [r for r in rows if r["member"] == name]
        row = {"member": name, "seeds": len(ms), "epochs_mean": float(np.mean([r["epochs"] for r in ms]))}
        for key in MEASURES:
            mean, _, half = interval(r[key] for r in ms)
            row[f"{key}_mean"], row[f"{key}_ci95"] = mean, half
            d, d_half, n = paired({r["seed"]: r[key] for r in ms}, base[key])
            row[f"{key}_vs_{BASELINE}"], row[f"{key}_vs_{BASELINE}_ci95"] = d, d_half
            row["paired_seeds"] = n
        row["wall_s_mean"] = float(np.mean([r["wall_s"] for r in ms]))
        table.append(row)
    return table


def difference(rows: list[dict], a: str, b: str, key: str) -> tuple[float, float, int]:
    """``key`` of member ``a`` minus member ``b``'s, paired by seed."""
    of = lambda name: {r["seed"]: r[key] for r in rows if r["member"] == name}  # noqa: E731
    return paired(of(a), of(b))


CLAIMS = (  # (claim and source, member, compared with, [(measure, the sign the claim predicts)])
    ("Large batches converge to sharper minima and generalize worse (Keskar et al. 2017)", "large", "small",
     [("test_acc", -1), ("hessian_top1", 1), ("sign_ascent", 1)]),
    ("SAM finds flatter minima and generalizes better than its base optimizer (Foret et al. 2021)", "large_sam", "large",
     [("test_acc", 1), ("hessian_top1", -1), ("sign_ascent", -1)]),
    ("Scaling the lr with √(batch) recovers much of the large batch's loss in accuracy (Hoffer et al. 2017)", "large_sqrt_lr",
     "large", [("test_acc", 1)]),
    ("SWA finds flatter, wider minima and generalizes better (Izmailov et al. 2018)", "small_swa", "small",
     [("test_acc", 1), ("hessian_top1", -1), ("loss_rise", -1)]),
    ("Averaging the iterates (EMA; Polyak & Juditsky 1992) generalizes better", "small_ema", "small",
     [("test_acc", 1), ("hessian_top1", -1)]),
)  # fmt: skip


def judge(rows: list[dict], names: list[str]) -> list[tuple[str, str, str]]:
    out = []
    for claim, member, other, aspects in CLAIMS:
        if member not in names or other not in names:
            continue
        parts, sides, n = [], [], 0
        for key, expected in aspects:
            d, half, n = difference(rows, member, other, key)
            scale, unit = (100, " points") if key in ("test_acc", "gap") else (1, "")
            side = direction(d, half, n)
            sides.append((MEASURES[key][1], side, expected))
            parts.append(f"{MEASURES[key][1]} {d * scale:+.3g} ± {half * scale:.2g}{unit}")
        agree = [what for what, side, want in sides if side == want]
        against = [what for what, side, want in sides if side == -want]
        if against:
            verdict = f"the opposite for {', '.join(against)}"
        elif len(agree) == len(sides):
            verdict = "consistent"
        elif agree:
            verdict = f"partly: {', '.join(agree)} consistent, the rest within the intervals"
        else:
            verdict = "not observed: within the intervals"
        out.append((claim, f"{member} − {other}, paired: " + "; ".join(parts), f"{verdict} ({n} seeds)"))
    return out


def draw_lines(found: dict, names: list[str], alphas: np.ndarray, folder: Path, writer) -> None:
    fig, axes = new_figure(1, 1, width=6.0, height=3.8)
    ax = axes[0, 0]
    for color, name in zip(palette(len(names)), names):
        curves = [np.array(v) for k, v in found.items() if k.rsplit("/seed", 1)[0] == name]
        for c in curves:
            ax.plot(alphas, c, color=color, linewidth=0.6, alpha=0.5)
        ax.plot(alphas, np.mean(curves, axis=0), color=color, linewidth=1.8, label=f"{name} (mean of {len(curves)})")
    ax.set_yscale("log")
    ax.axvline(0, color="0.6", linewidth=0.8)
    ax.set(xlabel="α along a filter-normalized random direction", ylabel="train loss (log scale)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, folder, "landscape_lines", writer)


def draw_planes(grids: dict, alphas: np.ndarray, folder: Path, writer) -> None:
    zs = {n: np.array(g) for n, g in grids.items()}
    lo = max(min(float(z.min()) for z in zs.values()), 1e-6)
    hi = max(float(z.max()) for z in zs.values())
    levels = np.logspace(np.log10(lo), np.log10(hi), 14)  # the same levels in both panels
    fig, axes = new_figure(1, len(zs), width=3.9, height=3.6)
    for ax, (name, z) in zip(axes[0], zs.items()):
        contour_panel(ax, alphas, z, levels, f"{name}: train loss")
    fig.tight_layout()
    save_figure(fig, folder, "landscape_planes", writer)


def draw_measures(table: list[dict], folder: Path, writer) -> None:
    keys = ("test_acc", "gap", "hessian_top1", "loss_rise")
    fig, axes = new_figure(1, len(keys), width=3.0, height=0.3 * len(table) + 1.6, sharey=True)
    y = np.arange(len(table))
    for ax, key in zip(axes[0], keys):
        scale = 100 if key in ("test_acc", "gap") else 1
        ax.errorbar([r[f"{key}_mean"] * scale for r in table], y, xerr=[r[f"{key}_ci95"] * scale for r in table], fmt="o",
                    color=palette(1)[0], capsize=3)  # fmt: skip
        ax.set_xlabel(MEASURES[key][1] + (" (points)" if scale == 100 else ""), fontsize=8)
        ax.grid(axis="x", color="0.9")
        if key == "hessian_top1":
            ax.set_xscale("log")
    axes[0, 0].set_yticks(y, [r["member"] for r in table])
    fig.suptitle("mean over seeds ± 95% interval", fontsize=10)
    fig.tight_layout()
    save_figure(fig, folder, "measures", writer)


def write_report(
    study_dir: Path, s: DictConfig, rows: list[dict], table: list[dict], names: list[str], between: dict, wall_s: float
) -> None:
    from core.files import write_text_atomic

    lines = [
        "# Flat minima",
        "",
        f"Recipe `{' '.join(s.recipe)}`, {s.epochs} epochs for every member, seeds {list(s.seeds)}. Members: "
        + "; ".join(f"`{n}` ({' '.join(s.members[n]) or 'the recipe'})" for n in names)
        + ". Each member's final weights (`test_ckpt=last`; for SWA and EMA the average) are probed on the training split: the "
        "Hessian's top eigenvalue and trace (Lanczos, Hutchinson), ε-sharpness (sign ascent in Keskar's box, ε = 1e-3), and the "
        f"train loss along a filter-normalized random direction (α in ±{s.landscape.span:g}; its rise at the ends measures the "
        "basin's width along it). Means ± 95% intervals over seeds; every comparison paired by seed (the members of one seed share "
        f"its split and data order). Wall time {wall_s:.0f} s.",
        "",
        "## Claims and what this study measured",
        "",
        "| claim (source) | measured here | verdict |",
        "|---|---|---|",
    ]
    lines += [f"| {c} | {m} | {v} |" for c, m, v in judge(rows, names)]
    lines += [
        "",
        "## Members",
        "",
        "| member | test acc | gap (points) | top Hessian eig. | Hessian trace | ε-sharpness (%) | loss rise | test acc − small (points) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in table:
        vs = "—" if r["member"] == BASELINE else f"{r['test_acc_vs_small'] * 100:+.1f} ± {r['test_acc_vs_small_ci95'] * 100:.1f}"
        cells = [f"{r['test_acc_mean']:.4f} ± {r['test_acc_ci95']:.4f}", f"{r['gap_mean'] * 100:.1f} ± {r['gap_ci95'] * 100:.1f}"]
        cells += [f"{r[f'{k}_mean']:.3g} ± {r[f'{k}_ci95']:.2g}" for k in ("hessian_top1", "hessian_trace", "sign_ascent", "loss_rise")]
        lines.append(f"| {r['member']} | {' | '.join(cells)} | {vs} |")
    if between:
        mid = len(between["alphas"]) // 2
        at = lambda a: int(np.argmin(np.abs(np.array(between["alphas"]) - a)))  # noqa: E731
        lines += [
            "",
            f"Between small and large (seed {s.seeds[0]}): train loss {between['train'][at(0)]:.3g} at small, "
            f"{between['train'][mid]:.3g} half-way, {between['train'][at(1)]:.3g} at large.",
        ]
    lines += ["", "![measures](figures/measures.png)", "", "![1-D landscapes](figures/landscape_lines.png)", ""]
    if between:
        lines += ["![small and large on a plane](figures/landscape_planes.png)", "", "![between](figures/interpolation.png)", ""]
    lines += [
        "Files: `results.csv` (one row per member and seed), `summary.csv`, `parts/` (the landscapes), `figures/`, runs in `members/`."
    ]
    write_text_atomic(study_dir / "report.md", "\n".join(lines) + "\n")


def run(cfg: DictConfig, study_dir: Path) -> dict:
    s, clock = cfg.study, Clock()
    names = check(s)
    rows = run_members(s, study_dir, names, lambda n: overrides_of(s, n), lambda n: s.epochs, score_train=True)
    for r in rows:
        record = json.loads((study_dir / "members" / r["member"] / f"seed{r['seed']}" / "metrics.json").read_text())
        r["gap"] = r["train_acc"] - r["test_acc"]
        for key, (source, _) in MEASURES.items():
            if source is not None and key != "test_acc":
                r[key] = record[source]
    log.info(f"landscapes: {len(rows)} lines")
    found = lines(study_dir, rows, s)
    alphas = np.linspace(-s.landscape.span, s.landscape.span, s.landscape.points)
    center = s.landscape.points // 2
    for r in rows:
        curve = found[f"{r['member']}/seed{r['seed']}"]
        r["loss_rise"] = max(curve[0], curve[-1]) - curve[center]
    pair = [BASELINE, "large"] if "large" in names else []
    grids, between = planes(study_dir, s, pair) if pair else ({}, {})
    table = summarize(rows, names)

    def draw(writer) -> None:
        folder = study_dir / "figures"
        draw_measures(table, folder, writer)
        draw_lines(found, names, alphas, folder, writer)
        if pair:
            draw_planes(grids, alphas, folder, writer)
            curves = {split: between[split] for split in ("train", "test")}
            interpolation_figure(between["alphas"], curves, tuple(pair), "loss", folder, "interpolation", writer)

    finish(study_dir, clock, rows, table, draw, lambda wall_s: write_report(study_dir, s, rows, table, names, between, wall_s))
    return {"members": names}
