"""The landscape probe's figures (callbacks/landscape.py), through callbacks/plot_style.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from callbacks.plot_style import new_figure, palette, save_figure


def _levels(z: np.ndarray, n: int = 14) -> np.ndarray:
    lo, hi = max(float(np.nanmin(z)), 1e-6), float(np.nanmax(z))
    return np.logspace(np.log10(lo), np.log10(hi if hi > lo else lo * 10), n)  # log-spaced: the basin's floor and its walls


def contour_panel(ax, alphas: np.ndarray, z: np.ndarray, levels: np.ndarray, title: str) -> None:
    """A loss plane as log-spaced contours over (α, β), the final weights starred at the origin."""
    cs = ax.contour(alphas, alphas, z, levels=levels, cmap="viridis", linewidths=0.9)
    ax.clabel(cs, fontsize=6, fmt="%.2g")
    ax.plot(0, 0, "*", color="#d55e00", markersize=11)
    ax.set(title=title, xlabel="α", ylabel="β")
    ax.set_aspect("equal")


def draw(found: dict, folder: Path, writer=None) -> None:
    splits = list(found["line"])
    colors = dict(zip(splits, palette(len(splits))))
    alphas = np.array(found["alphas"])
    accs = any("acc" in found["line"][s] for s in splits)
    fig, axes = new_figure(1, 2 if accs else 1, width=4.2, height=3.2)
    for split in splits:
        axes[0, 0].plot(alphas, found["line"][split]["loss"], color=colors[split], label=split)
        if accs:
            axes[0, 1].plot(alphas, found["line"][split]["acc"], color=colors[split], label=split)
    axes[0, 0].set_yscale("log")
    axes[0, 0].set(xlabel="α (filter-normalized direction)", ylabel="loss (log scale)")
    axes[0, 0].axvline(0, color="0.6", linewidth=0.8)
    axes[0, 0].legend(fontsize=8)
    if accs:
        axes[0, 1].set(xlabel="α (filter-normalized direction)", ylabel="accuracy")
        axes[0, 1].axvline(0, color="0.6", linewidth=0.8)
    fig.suptitle("loss along a random direction through the final weights (α = 0)", fontsize=10)
    fig.tight_layout()
    save_figure(fig, folder, "landscape_1d", writer)

    if found["plane"]:
        fig, axes = new_figure(1, len(found["plane"]), width=4.0, height=3.6)
        for ax, (split, grid) in zip(axes[0], found["plane"].items()):
            z = np.array(grid["loss"])
            contour_panel(ax, alphas, z, _levels(z), f"{split} loss (log-spaced contours)")
        fig.tight_layout()
        save_figure(fig, folder, "landscape_2d", writer)

    if found["between"]:
        curves = {split: curve["loss"] for split, curve in found["between"].items()}
        interpolation_figure(found["between_alphas"], curves, ("this run", "the other"), "loss", folder, "landscape_between", writer)


def interpolation_figure(alphas, curves: dict, ends: tuple[str, str], ylabel: str, folder: Path, stem: str, writer=None) -> None:
    """The loss along (1 − α)·a + α·b, one line per split (log scale), ``ends`` naming α = 0 and α = 1
    (the landscape probe's ``between``, the batch-size and flat-minima studies' small → large)."""
    fig, axes = new_figure(1, 1, width=5.0, height=3.4)
    ax = axes[0, 0]
    for (split, losses), color, style in zip(curves.items(), palette(len(curves)), ("-", "--", ":")):
        ax.plot(alphas, losses, color=color, linestyle=style, label=split)
    ax.set_yscale("log")
    for x, text in zip((0, 1), ends):
        ax.axvline(x, color="0.6", linewidth=0.8)
        ax.annotate(f" {text}", (x, 1), xycoords=("data", "axes fraction"), xytext=(2, -12), textcoords="offset points", fontsize=8)
    ax.set(xlabel=f"α: (1 − α)·{ends[0]} + α·{ends[1]}", ylabel=f"{ylabel} (log scale)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, folder, stem, writer)
