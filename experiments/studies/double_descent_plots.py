"""The figure of ``study=double_descent``: test and train error against width per label-noise level
with each level's interpolation threshold marked, the test loss against width, and the epoch-wise
curves of the threshold width and the widest one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.ticker import FormatStrFormatter
from omegaconf import DictConfig

from callbacks.plot_style import new_figure, palette, save_figure
from experiments.studies.double_descent import threshold


def label(noise: float) -> str:
    return f"{noise:.0%} label noise" if noise else "clean labels"


def figure(table: list[dict], curves: dict, s: DictConfig, folder: Path, writer) -> None:
    fig, axes = new_figure(1, 3, width=3.8, height=3.2)
    ax_err, ax_loss, ax_epoch = axes[0]
    colors = dict(zip(s.label_noise, palette(len(s.label_noise))))
    for noise in s.label_noise:
        rs = [r for r in table if r["label_noise"] == noise]
        w = [r["width"] for r in rs]
        for ax, key in ((ax_err, "test_err"), (ax_loss, "test_loss")):
            m, h = np.array([r[key] for r in rs]), np.array([r[f"{key}_ci"] for r in rs])
            ax.plot(w, m, marker="o", markersize=3, color=colors[noise], label=f"test, {label(noise)}")
            ax.fill_between(w, m - h, m + h, color=colors[noise], alpha=0.2, linewidth=0)
        ax_err.plot(w, [r["train_err"] for r in rs], linestyle="--", color=colors[noise], linewidth=1, label=f"train, {label(noise)}")
        t = threshold(table, noise)
        if t is not None:
            for ax in (ax_err, ax_loss):
                ax.axvline(t, color=colors[noise], linestyle=":", linewidth=1)
    headline = s.label_noise[0]
    t = threshold(table, headline)
    if t is not None:
        ax_err.text(t, 0.98, " interpolation", transform=ax_err.get_xaxis_transform(), fontsize=7, color="0.4", va="top")
    for ax, title, ylabel in ((ax_err, "model-wise: error", "error"), (ax_loss, "model-wise: test cross-entropy", "cross-entropy")):
        ax.set_xscale("log", base=2)
        ax.set_xlabel(f"hidden units per layer ({s.depth} layer{'s' if s.depth > 1 else ''})")
        ax.set_ylabel(ylabel)
        ax.set_title(title, fontsize=10)
    ax_loss.set_yscale("log")
    ax_loss.yaxis.set_major_formatter(FormatStrFormatter("%g"))
    ax_loss.yaxis.set_minor_formatter(FormatStrFormatter("%g"))
    ax_err.legend(loc="best", fontsize=6)
    shown = [x for x in dict.fromkeys([t, s.widths[-1]]) if x is not None]
    for width, color in zip(shown, palette(len(s.label_noise) + 2)[len(s.label_noise) :]):  # not the noise levels' colours
        c = curves[(headline, width)]
        epochs = c["epoch"]
        name = "threshold" if width == t else "widest"
        ax_epoch.plot(epochs, np.mean(c["test_err"], axis=1), color=color, label=f"test, width {width} ({name})")
        ax_epoch.plot(epochs, np.mean(c["train_err"], axis=1), color=color, linestyle="--", linewidth=1, label=f"train, width {width}")
    ax_epoch.set_xscale("log")
    ax_epoch.set_xlabel("epoch")
    ax_epoch.set_ylabel("error (mean over seeds)")
    ax_epoch.set_title(f"epoch-wise: {label(headline)}", fontsize=10)
    ax_epoch.legend(loc="best", fontsize=6)
    fig.tight_layout()
    save_figure(fig, folder, "double_descent", writer)
