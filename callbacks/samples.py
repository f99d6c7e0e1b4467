"""Sample grids of the generative families: every ``callbacks.samples_every`` epochs and after the
last one, 64 samples drawn with a fixed seed (the same noise every time, so grids from successive
epochs show the model changing, not the draw), to ``figures/samples_epochNNN`` and TensorBoard
(``figures/samples``); at the end ``figures/samples`` and the family's own figures
(reconstructions, a 2-D latent map)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback

SAMPLES, SEED = 64, 0


def mosaic(x: np.ndarray, columns: int, gap: int = 1) -> np.ndarray:
    """Images (n, C, H, W) tiled into one (rows·(H+gap), columns·(W+gap), C) array, gaps NaN (blank)."""
    n, c, h, w = x.shape
    rows = int(np.ceil(n / columns))
    out = np.full((rows * (h + gap) - gap, columns * (w + gap) - gap, c), np.nan)
    for i in range(n):
        r, k = divmod(i, columns)
        out[r * (h + gap) : r * (h + gap) + h, k * (w + gap) : k * (w + gap) + w] = x[i].transpose(1, 2, 0)
    return out


def sample_figure(
    x: torch.Tensor,
    kind: str,
    folder: Path,
    stem: str,
    writer=None,
    columns: int = 8,
    title: Optional[str] = None,
    tag: Optional[str] = None,
    step: Optional[int] = None,
) -> None:
    """Images (n, C, H, W) as one tiled picture; signals (n, C, L) as small line plots (the first 16)."""
    from callbacks.plot_style import new_figure, save_figure

    x = x.detach().float().cpu().numpy()
    if kind == "image":
        tiles = mosaic(x, columns)
        fig, axes = new_figure(1, 1, width=0.55 * columns, height=0.55 * columns * tiles.shape[0] / tiles.shape[1])
        low, high = float(x.min()), float(x.max())
        scaled = (tiles - low) / max(high - low, 1e-9)
        axes[0, 0].imshow(scaled if x.shape[1] == 3 else scaled[..., 0], cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
        axes[0, 0].set_axis_off()
    else:
        x = x[:16]
        fig, axes = new_figure(int(np.ceil(len(x) / 4)), 4, width=1.6, height=0.9)
        for ax, sample in zip(axes.flat, x):
            for channel in sample:
                ax.plot(channel, linewidth=0.8)
            ax.set_xticks([]), ax.set_yticks([])
    if title:
        fig.suptitle(title, fontsize=8)
    fig.tight_layout(pad=0.2)
    save_figure(fig, folder, stem, writer, tag=tag, step=step)


def latent_figure(mu: np.ndarray, labels: np.ndarray, folder: Path, writer=None) -> None:
    """The test set's posterior means in a 2-D latent space, coloured by class."""
    from callbacks.plot_style import new_figure, palette, save_figure

    fig, axes = new_figure(1, 1, width=4.2, height=3.8)
    ax = axes[0, 0]
    classes = np.unique(labels)
    for c, color in zip(classes, palette(len(classes))):
        ax.scatter(*mu[labels == c].T, s=6, color=color, label=str(c))
    ax.set_xlabel("$z_1$")
    ax.set_ylabel("$z_2$")
    ax.legend(loc="best", fontsize=6, markerscale=2, ncol=2)
    fig.tight_layout()
    save_figure(fig, folder, "latent_space", writer)


class SampleGrids(Callback):
    def __init__(self, folder: Path, every: Optional[int] = 5):
        self.folder, self.every = Path(folder), every

    def _grid(self, trainer: pl.Trainer, module, stem: str) -> None:
        from callbacks.plots import _writer

        samples = module.sample_data(SAMPLES, SEED)
        sample_figure(
            samples,
            trainer.datamodule.info.kind,
            self.folder,
            stem,
            _writer(trainer),
            tag="figures/samples",
            step=trainer.current_epoch + 1,
        )

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        epoch = trainer.current_epoch + 1
        if trainer.is_global_zero and self.every and epoch % self.every == 0 and epoch < trainer.max_epochs:
            self._grid(trainer, pl_module, f"samples_epoch{epoch:03d}")

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.is_global_zero:
            from callbacks.plots import _writer

            self._grid(trainer, pl_module, "samples")
            extra, writer = pl_module.figure_data(trainer.datamodule), _writer(trainer)
            if "reconstructions" in extra:
                sample_figure(
                    extra["reconstructions"],
                    trainer.datamodule.info.kind,
                    self.folder,
                    "reconstructions",
                    writer,
                    columns=8,
                    title="test inputs | reconstructions",
                )
            if "latent" in extra:
                latent_figure(*extra["latent"], self.folder, writer)
