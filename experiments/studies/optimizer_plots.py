"""Figures of the optimizer study, all through callbacks/plot_style.py."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from callbacks.plot_style import new_figure, palette, save_figure


def trajectories(surface, runs: dict, folder: Path, writer) -> None:
    """Small multiples: each optimizer's path (with its tuned lr) over log-spaced contours of f."""
    names = list(runs)
    cols = min(4, len(names))
    rows = math.ceil(len(names) / cols)
    fig, axes = new_figure(rows, cols, width=3.2, height=2.9, sharex=True, sharey=True)
    xs = np.linspace(*surface.xlim, 240)
    ys = np.linspace(*surface.ylim, 240)
    X, Y = np.meshgrid(xs, ys)
    import torch

    Z = surface.f(torch.from_numpy(X), torch.from_numpy(Y)).numpy()
    levels = np.logspace(math.log10(max(Z.min(), 1e-3)), math.log10(Z.max()), 18)
    color = palette(1)[0]
    for ax, name in zip(axes.flat, names):
        run = runs[name]
        path = run["path"][~np.isnan(run["path"]).any(axis=1)]
        ax.contour(X, Y, np.maximum(Z, 1e-3), levels=levels, colors="0.75", linewidths=0.5)
        ax.plot(path[:, 0], path[:, 1], color=color, linewidth=1.3)
        ax.plot(*surface.start, "o", color="0.2", markersize=4)
        for m in surface.minima:
            ax.plot(*m, "*", color="0.2", markersize=8)
        f = run["f"][np.isfinite(run["f"])]
        ax.plot(path[-1, 0], path[-1, 1], "s", color=color, markersize=4)
        if run["stall"] is not None:
            sx, sy = run["path"][run["stall"]]
            ax.plot(sx, sy, "X", color="#d55e00", markersize=9)
            ax.annotate(
                f"crawls from step {run['stall']}", (sx, sy), xytext=(6, -14), textcoords="offset points", color="#d55e00", fontsize=9
            )
        ax.set_title(f"{name} (lr {run['lr']:g}): f = {f[-1]:.2g}", fontsize=10)
        ax.set_xlim(*surface.xlim)
        ax.set_ylim(*surface.ylim)
    for ax in axes.flat[len(names) :]:
        ax.set_visible(False)
    for ax in axes[-1]:
        ax.set_xlabel("x")
    for ax in axes[:, 0]:
        ax.set_ylabel("y")
    steps = len(next(iter(runs.values()))["f"]) - 1
    noise = f", gradient noise σ = {surface.noise:g}" if surface.noise else ""
    fig.suptitle(f"{surface.name}: {steps} steps from ● to ■ (★ minimum{noise})", y=1.0)
    fig.tight_layout()
    save_figure(fig, folder, f"trajectories_{surface.name}", writer)


def surface_losses(surfaces, optimizers, best: dict, families: dict, folder: Path, writer) -> None:
    """f along each trajectory (log scale): rows are surfaces, columns optimizer families."""
    fams = {k: [o for o in v if o in optimizers] for k, v in families.items()}
    fams = {k: v for k, v in fams.items() if v}
    fig, axes = new_figure(len(surfaces), len(fams), width=3.6, height=2.6, sharex=True)
    for r, sname in enumerate(surfaces):
        for c, (fam, names) in enumerate(fams.items()):
            ax = axes[r, c]
            for color, name in zip(palette(len(names)), names):
                f = best[sname, name]["f"]
                ax.semilogy(np.arange(len(f)), np.maximum(f, 1e-12), color=color, label=f"{name} (lr {best[sname, name]['lr']:g})")
            ax.set_title(f"{sname} — {fam}", fontsize=10)
            ax.legend(fontsize=7, loc="lower left")
            if c == 0:
                ax.set_ylabel("f (log scale)")
            if r == len(surfaces) - 1:
                ax.set_xlabel("step")
    fig.tight_layout()
    save_figure(fig, folder, "surface_losses", writer)


def learning_curves(histories: dict, families: dict, folder: Path, writer) -> None:
    """Median over seeds (line) and min–max range (band) of train loss and val accuracy per epoch."""
    fams = {k: [o for o in v if o in histories] for k, v in families.items()}
    fams = {k: v for k, v in fams.items() if v}
    fig, axes = new_figure(2, len(fams), width=3.8, height=2.9, sharey="row")
    for c, (fam, names) in enumerate(fams.items()):
        for color, name in zip(palette(len(names)), names):
            for r, key in enumerate(("train/loss", "val/acc")):
                runs = histories[name]
                n = min(len(h) for h in runs)
                vals = np.array([[row.get(key, np.nan) for row in h[:n]] for h in runs])
                epochs = np.arange(1, n + 1)
                ax = axes[r, c]
                ax.plot(epochs, np.median(vals, axis=0), color=color, label=name)
                ax.fill_between(epochs, vals.min(axis=0), vals.max(axis=0), color=color, alpha=0.2, linewidth=0)
        axes[0, c].set_yscale("log")
        axes[0, c].set_title(fam, fontsize=11)
        axes[1, c].set_xlabel("epoch")
        axes[0, c].legend(fontsize=8)
    axes[0, 0].set_ylabel("train loss (log scale)")
    axes[1, 0].set_ylabel("val accuracy")
    lo = min(np.nanmin([row.get("val/acc", np.nan) for h in hs for row in h[len(h) // 4 :]]) for hs in histories.values())
    axes[1, 0].set_ylim(max(0.0, lo - 0.01), 1.0)
    fig.tight_layout()
    save_figure(fig, folder, "learning_curves", writer)


def test_accuracy(table: list[dict], folder: Path, writer) -> None:
    """Test accuracy per tuned optimizer, sorted: mean over seeds (dot) ± the 95% interval (whiskers).
    Dots, not bars: the axis does not start at zero, and a bar's length would then mislead."""
    rows = sorted(table, key=lambda r: r["test_acc_mean"])
    fig, axes = new_figure(1, 1, width=5.5, height=0.32 * len(rows) + 1.2)
    ax = axes[0, 0]
    mean = np.array([r["test_acc_mean"] for r in rows]) * 100
    half = np.array([r["test_acc_ci95"] for r in rows]) * 100
    ax.errorbar(mean, np.arange(len(rows)), xerr=half, fmt="o", color=palette(1)[0], capsize=3)
    ax.set_yticks(np.arange(len(rows)), [f"{r['optimizer']} (lr {r['lr']:g})" for r in rows])
    span = float((mean + half).max() - (mean - half).min()) or 1.0
    for y, (m, h) in enumerate(zip(mean, half)):
        ax.text(m + h + 0.02 * span, y, f"{m:.1f}%", va="center", fontsize=8)
    ax.set_xlim(float((mean - half).min()) - 0.05 * span, float((mean + half).max()) + 0.2 * span)
    ax.grid(axis="x", color="0.9")
    ax.set_xlabel(f"test accuracy (%), mean of {int(rows[0]['seeds'])} seeds ± 95% interval, each at its tuned lr")
    fig.tight_layout()
    save_figure(fig, folder, "test_accuracy", writer)


def lr_tuning(tuning: list[dict], chosen: dict, folder: Path, writer) -> None:
    """Validation accuracy against lr for every optimizer's candidates (log lr; mean over the tuning
    seeds), the chosen lr circled, an lr that diverged marked ✕ on the axis's floor."""
    names = list(chosen)
    fig, axes = new_figure(1, 1, width=7.0, height=4.2)
    ax = axes[0, 0]
    finite = [r["val_acc_best"] for r in tuning if not r["diverged"]]
    floor = min(finite) - 0.04 if finite else 0.0
    for color, name in zip(palette(len(names)), names):
        lrs = sorted({r["lr"] for r in tuning if r["optimizer"] == name})
        vals = []
        for lr in lrs:
            rs = [r for r in tuning if r["optimizer"] == name and r["lr"] == lr]
            vals.append(np.nan if any(r["diverged"] for r in rs) else float(np.mean([r["val_acc_best"] for r in rs])))
        ax.plot(lrs, vals, "o-", color=color, markersize=3.5, label=name)
        gone = [lr for lr, v in zip(lrs, vals) if np.isnan(v)]
        ax.plot(gone, [floor] * len(gone), "x", color=color, markersize=7, markeredgewidth=1.8)
        ax.plot(chosen[name]["lr"], chosen[name]["tune_val_acc"], "o", markersize=11, markerfacecolor="none", markeredgecolor=color)
    ax.set_xscale("log")
    ax.set_xlabel("learning rate (log scale)")
    ax.set_ylabel("best val accuracy (tuning seeds)")
    ax.set_title("lr tuned on validation: ○ chosen, ✕ diverged", fontsize=11)
    ax.grid(color="0.92")
    ax.legend(fontsize=8, ncol=2, loc="lower left")
    fig.tight_layout()
    save_figure(fig, folder, "lr_tuning", writer)
