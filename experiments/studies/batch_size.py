"""Batch size and sharp minima (``study=batch_size``, Keskar et al. 2017), under two protocols:
(a) Keskar's — one epoch budget and one lr for every batch size; (b) the control — every size
trained to the same training accuracy, its lr tuned on a grid (chosen by val accuracy, seed 0).
Per size and protocol over seeds: train and test accuracy, the gap, Keskar's ε-box sharpness,
sign-ascent sharpness in the same box, the top Hessian eigenvalue; and train/test loss along the
line from the smallest-batch to the largest-batch minimizer (protocol a, first seed)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from omegaconf import DictConfig, OmegaConf

from callbacks.plot_style import new_figure, palette, save_figure
from core.errors import ConfigError
from core.files import write_text_atomic
from experiments.studies.common import Clock, finish, log, write_csv
from experiments.studies.launch import launch_keys
from experiments.studies.members import check_seeds, load_member, run_members
from numerics.intervals import direction, interval, paired

PROBES = ("keskar", "sign_ascent", "hessian_top")


def check(s: DictConfig) -> None:
    check_seeds(s.seeds)
    if len(s.seeds) < 2:
        raise ConfigError(f"study.seeds={list(s.seeds)}: the sizes are compared paired by seed, which needs at least 2 seeds")
    if len(s.sizes) < 2 or any(not isinstance(b, int) or b < 1 for b in s.sizes):
        raise ConfigError(f"study.sizes={list(s.sizes)}: at least two batch sizes, integers >= 1")
    if not 0 < s.target_train_acc <= 1:
        raise ConfigError(f"study.target_train_acc={s.target_train_acc}: must be in (0, 1]")
    if not s.lr_grid or any(not isinstance(v, (int, float)) or v <= 0 for v in s.lr_grid):
        raise ConfigError(f"study.lr_grid={list(s.lr_grid)}: must be a non-empty list of numbers > 0")


def member_row(r: dict, study_dir: Path) -> dict:
    record = json.loads((study_dir / "members" / r["member"] / f"seed{r['seed']}" / "metrics.json").read_text())
    return {**r, **{p: record[f"sharpness/{p}"] for p in PROBES}, "train_loss": record["sharpness/train_loss"]}


def summarize(rows: list[dict], protocol: str, sizes, lrs: dict) -> list[dict]:
    out = []
    for b in sizes:
        ms = [r for r in rows if r["protocol"] == protocol and r["batch"] == b]
        row = {"protocol": protocol, "batch": b, "lr": lrs[b], "seeds": len(ms), "epochs_mean": float(np.mean([r["epochs"] for r in ms]))}
        for key in ("train_acc", "test_acc", "gap", *PROBES):
            mean, _, half = interval(r[key] for r in ms)
            row[f"{key}_mean"], row[f"{key}_ci95"] = mean, half
        out.append(row)
    return out


def interpolation(study_dir: Path, small: str, large: str, seed: int, folder: Path, writer) -> list[dict]:
    """Train and test loss at w(α) = (1 − α) w_small + α w_large, α ∈ [−0.5, 1.5] (41 points)."""
    from callbacks.landscape_plots import interpolation_figure
    from numerics.landscape import Surface, weights_of

    _, m_small, dm = load_member(study_dir / "members" / small / f"seed{seed}")
    _, m_large, _ = load_member(study_dir / "members" / large / f"seed{seed}")
    alphas = np.linspace(-0.5, 1.5, 41)
    curves = {}
    for split in ("train", "test"):
        x, y = dm.tensors(split)
        curves[split], _ = Surface(m_small.net, m_small.loss_fn, x, y).between(weights_of(m_small.net), weights_of(m_large.net), alphas)
    ends = (small.split("_")[-1], large.split("_")[-1])
    interpolation_figure(alphas, curves, ends, "cross-entropy", folder, "interpolation", writer)
    return [
        {"alpha": float(a), "train_loss": float(tr), "test_loss": float(te)} for a, tr, te in zip(alphas, curves["train"], curves["test"])
    ]


def figure(table: list[dict], folder: Path, writer) -> None:
    fig, axes = new_figure(1, 3, width=3.3, height=3.0)
    colors = dict(zip(("a", "b"), palette(2)))
    labels = {"a": "(a) same epochs", "b": "(b) same train acc, tuned lr"}
    for ax, (key, ylabel, log_scale) in zip(
        axes[0],
        (
            ("test_acc", "test accuracy", False),
            ("gap", "gap: train − test acc", False),
            ("sign_ascent", "sharpness, sign ascent (%)", True),
        ),
    ):
        for protocol in ("a", "b"):
            rs = [r for r in table if r["protocol"] == protocol]
            ax.errorbar(
                [r["batch"] for r in rs],
                [r[f"{key}_mean"] for r in rs],
                yerr=[r[f"{key}_ci95"] for r in rs],
                marker="o",
                capsize=3,
                color=colors[protocol],
                label=labels[protocol],
            )
        ax.set_xscale("log", base=2)
        if log_scale:
            ax.set_yscale("log")
        ax.set_xlabel("batch size")
        ax.set_ylabel(ylabel)
    axes[0, 0].legend(loc="lower left", fontsize=7)
    fig.tight_layout()
    save_figure(fig, folder, "batch_size", writer)


def write_report(study_dir: Path, s: DictConfig, rows: list[dict], table: list[dict], line: list[dict], wall_s: float) -> None:
    def at(p, b):
        return next(r for r in table if r["protocol"] == p and r["batch"] == b)

    def hi_minus_lo(p, key):
        """The largest size's ``key`` minus the smallest's, paired by seed: (mean, 95% half-width, seeds)."""
        of = lambda b: {r["seed"]: r[key] for r in rows if r["protocol"] == p and r["batch"] == b}  # noqa: E731
        return paired(of(hi), of(lo))

    def verdict(mean, half, k, expected):  # expected: the sign the claim predicts
        side = direction(mean, half, k)
        return ("consistent" if side == expected else "the opposite, beyond the interval" if side else "not beyond the interval") + (
            f" ({k} seeds)"
        )

    lo, hi = min(s.sizes), max(s.sizes)
    lines = [
        "# Batch size and sharp minima",
        "",
        f"Recipe `{' '.join(s.recipe)}`, seeds {list(s.seeds)}, batch sizes {list(s.sizes)}. (a) {s.epochs} epochs at lr "
        f"{at('a', lo)['lr']} for every size. (b) each size stops when its training accuracy reaches {s.target_train_acc} "
        f"(or after {s.max_epochs} epochs), lr per size from {list(s.lr_grid)} by val accuracy on seed {s.seeds[0]}. "
        f"Sharpness at the final weights on the training split: Keskar's ε-box (ε = 1e-3, 10 L-BFGS-B iterations), "
        f"sign ascent in the same box (20 steps), top Hessian eigenvalue (power iteration). Mean ± 95% CI; the sizes are compared "
        f"paired by seed (one seed's members share its split and data order): the mean per-seed difference ± its 95% half-width. "
        f"Wall time {wall_s:.0f} s.",
        "",
        "## Claims and what this study measured",
        "",
        "| claim | protocol | measured here | verdict |",
        "|---|---|---|---|",
    ]
    n = f" ({len(s.seeds)} seeds)"  # what each verdict rests on
    for p in ("a", "b"):
        sharper = at(p, hi)["sign_ascent_mean"] / max(at(p, lo)["sign_ascent_mean"], 1e-12)
        hess = at(p, hi)["hessian_top_mean"] / max(at(p, lo)["hessian_top_mean"], 1e-12)
        d_acc, h_acc, k = hi_minus_lo(p, "test_acc")
        lines.append(
            f"| Large batches generalize worse (Keskar et al. 2017) | {p} | test acc {hi} vs {lo}: {d_acc * 100:+.1f} ± "
            f"{h_acc * 100:.1f} points | {verdict(d_acc, h_acc, k, -1)} |"
        )
        gap_lo, gap_hi = at(p, lo)["gap_mean"], at(p, hi)["gap_mean"]
        d_gap, h_gap, k = hi_minus_lo(p, "gap")
        lines.append(
            f"| … with a larger generalization gap | {p} | train − test accuracy {gap_lo * 100:.1f} → {gap_hi * 100:.1f} points "
            f"({lo} → {hi}: {d_gap * 100:+.1f} ± {h_gap * 100:.1f}; train acc {at(p, lo)['train_acc_mean']:.3f} → "
            f"{at(p, hi)['train_acc_mean']:.3f}) | {verdict(d_gap, h_gap, k, 1)} |"
        )
        lines.append(
            f"| … and converge to sharper minima | {p} | sign-ascent sharpness ×{sharper:.2f}, Keskar ×"
            f"{at(p, hi)['keskar_mean'] / max(at(p, lo)['keskar_mean'], 1e-12):.2f}, top Hessian eigenvalue ×{hess:.2f} ({hi} vs {lo}) | "
            f"{'consistent' if sharper > 1 and hess > 1 else 'mixed' if sharper > 1 or hess > 1 else 'not observed'}{n} |"
        )
    lines += [
        "",
        "| protocol | batch | lr | epochs | train acc | test acc | gap | Keskar (%) | sign ascent (%) | top Hessian eig. |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in table:
        lines.append(
            f"| {r['protocol']} | {r['batch']} | {r['lr']:g} | {r['epochs_mean']:.0f} | {r['train_acc_mean']:.4f} | "
            f"{r['test_acc_mean']:.4f} ± {r['test_acc_ci95']:.4f} | {r['gap_mean'] * 100:.1f} ± {r['gap_ci95'] * 100:.1f} | "
            f"{r['keskar_mean']:.3g} ± {r['keskar_ci95']:.2g} | {r['sign_ascent_mean']:.3g} ± {r['sign_ascent_ci95']:.2g} | "
            f"{r['hessian_top_mean']:.3g} ± {r['hessian_top_ci95']:.2g} |"
        )
    mid = min(line, key=lambda p: abs(p["alpha"] - 0.5))
    lines += [
        "",
        f"Along the line from the batch-{lo} to the batch-{hi} minimizer (protocol a, seed {s.seeds[0]}): train loss "
        f"{line[10]['train_loss']:.3g} at α = 0, {mid['train_loss']:.3g} at α = 0.5, {line[30]['train_loss']:.3g} at α = 1.",
        "",
        "![batch size](figures/batch_size.png)",
        "",
        "![interpolation](figures/interpolation.png)",
        "",
        "Files: `results.csv`, `summary.csv`, `interpolation.csv`, `figures/`, runs in `members/`.",
    ]
    write_text_atomic(study_dir / "report.md", "\n".join(lines) + "\n")


def run(cfg: DictConfig, study_dir: Path) -> dict:
    s, clock = cfg.study, Clock()
    check(s)
    name = lambda p, b, lr=None: f"{p}_lr{lr}_b{b}" if lr is not None else f"{p}_b{b}"  # noqa: E731  (a_b32, tune_lr0.001_b32, b_b32)
    a_members = {name("a", b): b for b in s.sizes}
    rows = run_members(s, study_dir, list(a_members), lambda n: [f"data.batch_size={a_members[n]}"], lambda n: s.epochs, score_train=True)
    for r in rows:
        r["protocol"], r["batch"] = "a", a_members[r["member"]]
    # (b): tune the lr per size on the first seed, then every seed at the chosen lr
    stop = [f"callbacks.stop_at_train_acc={s.target_train_acc}"]
    tune = {name("tune", b, lr): (b, lr) for b in s.sizes for lr in s.lr_grid}
    tune_s = OmegaConf.create({"recipe": list(s.recipe), "seeds": [s.seeds[0]], **launch_keys(s)})
    tuned = run_members(
        tune_s,
        study_dir,
        list(tune),
        lambda n: [f"data.batch_size={tune[n][0]}", f"optimizer.lr={tune[n][1]}", *stop, "callbacks.sharpness.enabled=false"],
        lambda n: s.max_epochs,
    )
    chosen = {}
    for b in s.sizes:
        val = {
            lr: json.loads((study_dir / "members" / name("tune", b, lr) / f"seed{s.seeds[0]}" / "metrics.json").read_text())["val/acc_best"]
            for lr in s.lr_grid
        }
        chosen[b] = max(val, key=val.get)
        log.info(f"(b) batch {b}: lr {chosen[b]} (val acc {val[chosen[b]]:.4f})")
    b_members = {name("b", b): b for b in s.sizes}
    b_rows = run_members(
        s,
        study_dir,
        list(b_members),
        lambda n: [f"data.batch_size={b_members[n]}", f"optimizer.lr={chosen[b_members[n]]}", *stop],
        lambda n: s.max_epochs,
        score_train=True,
    )
    for r in b_rows:
        r["protocol"], r["batch"] = "b", b_members[r["member"]]
    rows = [member_row({**r, "gap": r["train_acc"] - r["test_acc"]}, study_dir) for r in rows + b_rows]
    write_csv(study_dir / "tuning.csv", [{**r, "batch": tune[r["member"]][0], "lr": tune[r["member"]][1]} for r in tuned])
    a_lr = float(
        OmegaConf.load(study_dir / "members" / name("a", s.sizes[0]) / f"seed{s.seeds[0]}" / ".hydra" / "config.yaml").optimizer.lr
    )
    table = summarize(rows, "a", s.sizes, {b: a_lr for b in s.sizes}) + summarize(rows, "b", s.sizes, chosen)
    line: list[dict] = []

    def draw(writer) -> None:
        figure(table, study_dir / "figures", writer)
        line.extend(interpolation(study_dir, name("a", min(s.sizes)), name("a", max(s.sizes)), s.seeds[0], study_dir / "figures", writer))
        write_csv(study_dir / "interpolation.csv", line)

    finish(study_dir, clock, rows, table, draw, lambda wall_s: write_report(study_dir, s, rows, table, line, wall_s))
    return {"sizes": list(s.sizes)}
