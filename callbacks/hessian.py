"""At the end of fitting, the Hessian of the training loss at the weights reached
(numerics/hessian.py), on the clean training split with the network in eval mode: the top-k
eigenvalues (Lanczos), the trace (Hutchinson, with its standard error) and the eigenvalue density
(stochastic Lanczos quadrature), drawn as ``figures/hessian_density``. Results go to TensorBoard and
to ``metrics.json`` (``hessian/*``). Switched on with ``callbacks.hessian.enabled=true``; usable on
any classification or regression run."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import numpy as np
import pytorch_lightning as pl
from pytorch_lightning.callbacks import Callback

from callbacks.sharpness import publish, train_split
from numerics.hessian import Hessian, hutchinson_trace, spectral_density, top_eigenvalues
from numerics.sharpness import FlatLoss


class HessianProbe(Callback):
    def __init__(
        self,
        top_k: int = 5,
        lanczos_steps: int = 30,
        trace_samples: int = 50,
        density_runs: int = 2,
        density_steps: int = 60,
        max_samples: int = 4096,
        figures: Optional[Path] = None,
    ):
        self.top_k, self.lanczos_steps, self.trace_samples = top_k, lanczos_steps, trace_samples
        self.density_runs, self.density_steps, self.max_samples, self.figures = density_runs, density_steps, max_samples, figures
        self.density: Optional[tuple[np.ndarray, np.ndarray]] = None  # the last measure's (grid, density)

    def measure(self, net, loss_fn, x, y) -> dict[str, float]:
        """The Hessian measures of ``net`` (in eval mode) on its first ``max_samples`` of (x, y); the
        network's mode is restored. A ``seeds=[...]`` run calls it per member."""
        t0 = time.perf_counter()
        x, y = x[: self.max_samples], y[: self.max_samples]
        was_training = net.training
        net.eval()
        try:
            h = Hessian(FlatLoss(net, loss_fn, x, y))
            top = top_eigenvalues(h, self.top_k, self.lanczos_steps)
            trace, se = hutchinson_trace(h, self.trace_samples)
            grid, density, _ = spectral_density(h, self.density_runs, self.density_steps)
        finally:
            net.train(was_training)
        self.density = (grid, density)
        results = {f"hessian/top{i + 1}": v for i, v in enumerate(top)}
        results.update({"hessian/trace": trace, "hessian/trace_se": se, "hessian/hvps": float(h.calls)})
        results["hessian/probe_s"] = time.perf_counter() - t0
        return results

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.is_global_zero or trainer.datamodule is None:
            return
        x, y = train_split(trainer, pl_module, self.max_samples)
        results = self.measure(pl_module.net, pl_module.loss_fn, x, y)
        publish(trainer, pl_module, results)
        if self.figures is not None:
            from callbacks.loggers import tensorboard_of

            board = tensorboard_of(trainer)
            draw_density(*self.density, results, self.figures, None if board is None else board.experiment)


def draw_density(grid: np.ndarray, density: np.ndarray, results: dict, folder: Path, writer=None) -> None:
    """The eigenvalue density (log scale, as PyHessian draws it), the top eigenvalues marked."""
    from callbacks.plot_style import new_figure, palette, save_figure

    fig, axes = new_figure(1, 1, width=6.0, height=3.6)
    ax = axes[0, 0]
    line, mark = palette(2)
    floor = max(float(density.max()) * 1e-7, 1e-12)
    ax.semilogy(grid, np.maximum(density, floor), color=line)
    tops = [v for k, v in results.items() if k.startswith("hessian/top")]
    for v in tops:
        ax.axvline(v, color=mark, linewidth=0.8, linestyle="--")
    ax.set_ylim(floor, float(density.max()) * 3)
    ax.set_xlabel("eigenvalue of the training loss's Hessian")
    ax.set_ylabel("density (log scale)")
    ax.set_title(
        f"λ₁ = {tops[0]:.3g}, trace = {results['hessian/trace']:.3g} ± {results['hessian/trace_se']:.2g} (top {len(tops)} dashed)",
        fontsize=10,
    )
    fig.tight_layout()
    save_figure(fig, folder, "hessian_density", writer)
