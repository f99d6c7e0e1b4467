"""Per-run figures, drawn on rank 0 in the house style (callbacks/plot_style.py) into
``<run_dir>/figures/`` (PDF + 300-dpi PNG) and logged to TensorBoard:

- learning curves (train/val loss and accuracy per epoch), at the end of fitting;
- the normalized confusion matrix of the test split (classification), after testing;
- the decision boundary over 2-D inputs (moons, circles), after testing;
- weight and gradient histograms to TensorBoard every ``every`` epochs.

The hooks are thin: they read what the run already has (``History`` rows, the DataModule's test
tensors) and restore the module's train/eval mode after predicting.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback

from callbacks.history import History
from callbacks.loggers import tensorboard_of
from lightning_modules.capabilities import Supports


def confusion(targets: np.ndarray, predictions: np.ndarray, num_classes: int) -> np.ndarray:
    """Row-normalized confusion matrix: entry (i, j) is the fraction of class i predicted as j
    (rows of absent classes stay 0)."""
    counts = np.bincount(targets * num_classes + predictions, minlength=num_classes**2).reshape(num_classes, num_classes)
    totals = counts.sum(axis=1, keepdims=True)
    return np.divide(counts, totals, out=np.zeros_like(counts, dtype=float), where=totals > 0)


@torch.no_grad()
def predict(module: pl.LightningModule, x: torch.Tensor, batch: int = 4096) -> torch.Tensor:
    """The module's outputs on ``x`` in eval mode; its previous train/eval mode is restored."""
    was_training = module.training
    module.eval()
    try:
        return torch.cat([module(x[i : i + batch].to(module.device)).cpu() for i in range(0, len(x), batch)])
    finally:
        module.train(was_training)


def _writer(trainer: pl.Trainer):
    logger = tensorboard_of(trainer)
    return None if logger is None else logger.experiment


class RunFigures(Callback):
    def __init__(self, folder: Path, history: History, histograms_every: Optional[int] = None, test_figures: bool = True):
        """``test_figures=False``: no test-set figures (a ``seeds=[...]`` run's members each have their own predictions)."""
        self.folder, self.history, self.every, self.test_figures = Path(folder), history, histograms_every, test_figures
        self.first_step = self.stepped = False

    # ------------------------------------------------------------------ histograms
    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch, batch_idx: int) -> None:
        if batch_idx == 0:
            self.first_step, self.stepped = True, False  # the epoch's first optimizer step(s) come next

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs, batch, batch_idx: int) -> None:
        if self.stepped:  # the batch that held the epoch's first step (every optimizer's, for a GAN) is over
            self.first_step = self.stepped = False

    def on_before_optimizer_step(self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer) -> None:
        from lightning_modules.optimizers import is_perturbed

        if not self.first_step or is_perturbed(optimizer):  # SAM's second pass is at perturbed weights
            return
        self.stepped = True
        if not self.every or not trainer.is_global_zero or trainer.current_epoch % self.every:
            return
        writer = _writer(trainer)
        if writer is None:
            return
        for name, p in pl_module.net.named_parameters():
            writer.add_histogram(f"weights/{name}", p.detach().cpu(), trainer.global_step)
            if p.grad is not None:
                writer.add_histogram(f"gradients/{name}", p.grad.detach().cpu(), trainer.global_step)

    # ------------------------------------------------------------------ learning curves
    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.is_global_zero and self.history.rows:
            learning_curves(self.history.rows, self.folder, _writer(trainer))

    # ------------------------------------------------------------------ test-set figures
    def on_test_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        dm = trainer.datamodule
        if (
            not self.test_figures
            or not trainer.is_global_zero
            or dm is None
            or dm.task != "classification"
            or not getattr(pl_module, "supports", Supports()).labels
        ):
            return
        x, y = dm.tensors("test")
        if len(y) == 0:
            return
        writer = _writer(trainer)
        predictions = predict(pl_module, x).argmax(1).numpy()
        confusion_figure(confusion(y.cpu().numpy(), predictions, dm.num_outputs), self.folder, writer)
        if dm.info.kind == "tabular" and dm.input_shape == (2,):
            x_train, y_train = dm.tensors("train")
            decision_boundary(pl_module, x_train.cpu(), y_train.cpu(), x.cpu(), y.cpu(), self.folder, writer)


def learning_curves(rows: list[dict], folder: Path, writer) -> None:
    from callbacks.plot_style import new_figure, palette, save_figure

    metrics = [m for m in ("loss", "acc", "mse") if any(f"train/{m}" in r or f"val/{m}" in r for r in rows)][:2]
    fig, axes = new_figure(1, len(metrics), width=4.2, height=3.2)
    train_c, val_c = palette(2)
    for ax, metric in zip(axes[0], metrics):
        for stage, color in (("train", train_c), ("val", val_c)):
            name = f"{stage}/{metric}"
            members = sorted({k for r in rows for k in r if k.startswith(f"{name}/seed")})  # a seeds=[...] run: each member thin
            for key in members:
                pts = [(r["epoch"], r[key]) for r in rows if r.get(key) not in (None, "")]
                ax.plot(*zip(*pts), color=color, linewidth=0.6, alpha=0.35)
            pts = [(r["epoch"], r[name]) for r in rows if name in r]
            if pts:
                label = f"{stage} (mean of {len(members)} members)" if members else stage
                ax.plot(*zip(*pts), color=color, marker="o", markersize=2.5, label=label)
        ax.set_xlabel("epoch")
        ax.set_ylabel({"loss": "loss", "acc": "accuracy", "mse": "mean squared error"}[metric])
        ax.legend(loc="best")
    fig.tight_layout()
    save_figure(fig, folder, "learning_curves", writer)


def confusion_figure(matrix: np.ndarray, folder: Path, writer) -> None:
    from callbacks.plot_style import new_figure, save_figure

    k = len(matrix)
    fig, axes = new_figure(1, 1, width=0.45 * k + 2.2, height=0.45 * k + 1.6)
    ax = axes[0, 0]
    image = ax.imshow(matrix, vmin=0, vmax=1, cmap="Blues")  # a heatmap by hand: seaborn's import costs ~1.5 s a run
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="fraction of the true class")
    if k <= 12:
        for (i, j), value in np.ndenumerate(matrix):
            ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=7, color="white" if value > 0.6 else "black")
    ax.set_xticks(range(k))
    ax.set_yticks(range(k))
    ax.spines[:].set_visible(False)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(f"test split, mean per-class recall {np.trace(matrix) / k:.3f}", fontsize=10)
    save_figure(fig, folder, "confusion_matrix", writer)  # one panel: savefig's tight bbox suffices (tight_layout costs ~0.6 s)


def decision_boundary(module, x_train, y_train, x_test, y_test, folder: Path, writer, steps: int = 200) -> None:
    """Predicted class over a grid covering the (normalized) inputs, with the test points on top."""
    from matplotlib.colors import ListedColormap

    from callbacks.plot_style import new_figure, palette, save_figure

    both = torch.cat([x_train, x_test])
    lo, hi = both.min(0).values - 0.5, both.max(0).values + 0.5
    gx, gy = torch.meshgrid(torch.linspace(lo[0], hi[0], steps), torch.linspace(lo[1], hi[1], steps), indexing="xy")
    probs = predict(module, torch.stack([gx.flatten(), gy.flatten()], 1)).softmax(1)  # (steps², C)
    k = probs.shape[1]
    colors = palette(k)
    fig, axes = new_figure(1, 1, width=4.4, height=3.8)
    ax = axes[0, 0]
    ax.contourf(gx, gy, probs.argmax(1).view(steps, steps), levels=np.arange(k + 1) - 0.5, cmap=ListedColormap(colors), alpha=0.3)
    if k == 2:
        ax.contour(gx, gy, probs[:, 1].view(steps, steps), levels=[0.5], colors="0.2", linewidths=1)
    for c in range(k):
        pts = x_test[y_test == c]
        ax.scatter(pts[:, 0], pts[:, 1], s=9, color=colors[c], edgecolors="white", linewidths=0.3, label=f"class {c}")
    ax.set_xlabel("input 1 (normalized)")
    ax.set_ylabel("input 2 (normalized)")
    ax.legend(loc="upper right", fontsize=8, markerscale=1.5)
    ax.set_title("decision boundary, test points", fontsize=10)
    fig.tight_layout()
    save_figure(fig, folder, "decision_boundary", writer)
