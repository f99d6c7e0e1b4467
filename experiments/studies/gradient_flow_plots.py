"""The figures of ``study=gradient_flow`` (experiments/studies/gradient_flow.py), through the plot style:
per-layer gradient norms and activation spreads (a panel per activation × initialization, a line per
depth), the test accuracy by depth as a heat map, ‖∂loss/∂h_t‖ back in time, and the test MSE
against the sequence length. Profiles are averaged over seeds geometrically (they span decades)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.ticker import MaxNLocator, NullLocator
from omegaconf import DictConfig

from callbacks.plot_style import new_figure, palette, save_figure

INIT_NAMES = {"normal": "N(0, σ²)", "xavier_normal": "Xavier", "kaiming_normal": "Kaiming", "default": "PyTorch default"}
TINY = 1e-300


def geometric(curves: list[list[float]]) -> np.ndarray:
    return np.exp(np.mean(np.log(np.maximum(np.array(curves, dtype=float), TINY)), axis=0))


def init_name(init: str, std: float) -> str:
    return INIT_NAMES.get(init, init).replace("σ", f"{std:g}")


def profiles_figure(s: DictConfig, depth: dict, key: str, ylabel: str, stem: str, folder: Path, writer) -> None:
    """A panel per (activation, init): ``key``'s profile against the layer at initialization (solid)
    and after training (dashed), a colour per depth."""
    d = s.depth
    acts, inits = list(d.activations), list(d.inits)
    depths = sorted({k[2] for k in depth})
    colors = dict(zip(depths, palette(len(depths))))
    fig, axes = new_figure(len(acts), len(inits), width=3.3, height=2.6, sharey="row", sharex=True)
    for i, act in enumerate(acts):
        for j, init in enumerate(inits):
            ax = axes[i, j]
            for dep in depths:
                unit = depth.get((act, init, dep))
                if unit is None:
                    continue
                for when, style, width in (("init", "-", 1.4), ("trained", "--", 1.0)):
                    y = geometric([p[f"{key}_{when}"] for p in unit["profiles"]])
                    ax.plot(np.arange(1, len(y) + 1), y, style, color=colors[dep], linewidth=width, marker="o" if len(y) < 4 else None,
                            markersize=2.5)  # fmt: skip
            ax.set_yscale("log")
            ax.yaxis.set_minor_locator(NullLocator())  # decades apart: minor ticks would only crowd (and slow) the panels
            ax.xaxis.set_major_locator(MaxNLocator(integer=True, steps=[1, 2, 5, 10]))
            ax.set_xlim(left=0.5)
            ax.grid(axis="y", color="0.92", linewidth=0.6)
            if i == 0:
                ax.set_title(init_name(init, d.init_std), fontsize=10)
            if j == 0:
                ax.set_ylabel(f"{act}\n{ylabel}", fontsize=9)
            if i == len(acts) - 1:
                ax.set_xlabel("layer (1: input side; last: output)" if key == "grad" else "hidden layer (1: input side)", fontsize=9)
            ax.tick_params(labelsize=8)
    handles = [axes[0, 0].plot([], [], color=colors[dep], label=f"depth {dep}")[0] for dep in depths]
    handles += [axes[0, 0].plot([], [], "-", color="0.3", label="at initialization")[0]]
    handles += [axes[0, 0].plot([], [], "--", color="0.3", label=f"after {d.steps} steps")[0]]
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=9, bbox_to_anchor=(0.5, 1.0))
    fig.tight_layout()
    save_figure(fig, folder, stem, writer)


def accuracy_figure(s: DictConfig, table: list[dict], folder: Path, writer) -> None:
    rows = [r for r in table if r["part"] == "depth"]
    pairs = list(dict.fromkeys((r["activation"], r["init"]) for r in rows))
    depths = sorted({r["depth"] for r in rows})
    grid = np.full((len(pairs), len(depths)), np.nan)
    for r in rows:
        grid[pairs.index((r["activation"], r["init"])), depths.index(r["depth"])] = r["test_acc"]
    fig, axes = new_figure(1, 1, width=1.0 * len(depths) + 3.2, height=0.32 * len(pairs) + 1.4)
    ax = axes[0, 0]
    image = ax.imshow(grid, vmin=0, vmax=1, cmap="viridis", aspect="auto")
    for i in range(len(pairs)):
        for j in range(len(depths)):
            if np.isfinite(grid[i, j]):
                ax.text(j, i, f"{grid[i, j]:.2f}", ha="center", va="center", fontsize=8, color="white" if grid[i, j] < 0.6 else "black")
    ax.set_xticks(range(len(depths)), [str(x) for x in depths])
    ax.set_yticks(range(len(pairs)), [f"{a} / {init_name(i, s.depth.init_std)}" for a, i in pairs], fontsize=8)
    ax.set_xlabel("hidden layers")
    ax.set_title(f"test accuracy after {s.depth.steps} steps (mean of {len(s.seeds)} seeds)", fontsize=10)
    ax.tick_params(length=0)
    for i in range(1, len(pairs)):
        if pairs[i][0] != pairs[i - 1][0]:  # a gap between activations
            ax.axhline(i - 0.5, color="white", linewidth=2.5)
    for side in ("left", "bottom"):
        ax.spines[side].set_visible(False)
    fig.colorbar(image, ax=ax, fraction=0.05, pad=0.03).set_label("test accuracy", fontsize=9)
    fig.tight_layout()
    save_figure(fig, folder, "depth_accuracy", writer)


def state_gradients_figure(s: DictConfig, recurrence: dict, folder: Path, writer) -> None:
    """‖∂loss/∂h_t‖ / ‖∂loss/∂h_L‖ against the steps before the end: at initialization and after training, a panel per length."""
    lengths = sorted({k[1] for k in recurrence})
    models = [m for m in s.recurrence.models if any(k[0] == m for k in recurrence)]
    colors = dict(zip(models, palette(len(models))))
    fig, axes = new_figure(2, len(lengths), width=3.4, height=2.8, sharey="row")
    for i, when in enumerate(("init", "trained")):
        for j, length in enumerate(lengths):
            ax = axes[i, j]
            for m in models:
                unit = recurrence.get((m, length))
                if unit is None:
                    continue
                g = geometric([p[f"grad_{when}"] for p in unit["profiles"]])
                ax.plot(np.arange(len(g))[::-1], g / g[-1], color=colors[m], label=m)
            ax.set_yscale("log")
            ax.yaxis.set_minor_locator(NullLocator())
            ax.grid(axis="y", color="0.92", linewidth=0.6)
            ax.set_title(f"length {length}, {'at initialization' if when == 'init' else f'after {s.recurrence.steps} steps'}", fontsize=9)
            if j == 0:
                ax.set_ylabel("‖∂loss/∂h_t‖ / ‖∂loss/∂h_L‖", fontsize=9)
            if i == 1:
                ax.set_xlabel("steps before the end (L − t)", fontsize=9)
            ax.tick_params(labelsize=8)
    axes[0, 0].legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, folder, "recurrence_gradients", writer)


def mse_figure(s: DictConfig, table: list[dict], seeds: list[dict], folder: Path, writer) -> None:
    """The mean test MSE over seeds against the length (a line per model), each seed's as a dot: on a
    log scale a symmetric interval of values near 0 would reach below it."""
    rows = [r for r in table if r["part"] == "recurrence"]
    models = [m for m in s.recurrence.models if any(r["model"] == m for r in rows)]
    fig, axes = new_figure(1, 1, width=4.6, height=3.4)
    ax = axes[0, 0]
    for color, m in zip(palette(len(models)), models):
        rs = sorted((r for r in rows if r["model"] == m), key=lambda r: r["length"])
        ax.plot([r["length"] for r in rs], [r["test_mse"] for r in rs], marker="o", markersize=4, color=color, label=m)
        own = [r for r in seeds if r["part"] == "recurrence" and r["model"] == m]
        ax.scatter([r["length"] for r in own], [r["test_mse"] for r in own], s=9, color=color, alpha=0.45, linewidths=0)
    lengths = sorted({r["length"] for r in rows})
    base = [np.mean([r["baseline_mse"] for r in rows if r["length"] == n]) for n in lengths]
    ax.plot(lengths, base, ":", color="0.4", label="predicting the training mean")
    ax.set_yscale("log")
    ax.set_xscale("log")
    ax.set_xticks(lengths, [str(n) for n in lengths])
    ax.minorticks_off()
    ax.set(xlabel="sequence length", ylabel="test MSE")
    ax.set_title(f"the adding problem: mean of {len(s.seeds)} seeds (dots: each seed)", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, folder, "recurrence_mse", writer)


def draw(s: DictConfig, depth: dict, recurrence: dict, rows: list[dict], table: list[dict], folder: Path, writer) -> None:
    if depth:
        profiles_figure(s, depth, "grad", "‖∂loss/∂W‖", "depth_gradients", folder, writer)
        profiles_figure(s, depth, "act_std", "activation std", "depth_activations", folder, writer)
        accuracy_figure(s, table, folder, writer)
    if recurrence:
        state_gradients_figure(s, recurrence, folder, writer)
        mse_figure(s, table, rows, folder, writer)
