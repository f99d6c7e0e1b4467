"""At the end of fitting, the sharpness of the minimizer reached (numerics/sharpness.py) on
the clean training split: Keskar's ε-box metric (L-BFGS-B), the sign-ascent search of the same box,
and the top Hessian eigenvalue. Results go to TensorBoard and to ``metrics.json`` (``sharpness/*``).
Switched on with ``callbacks.sharpness.enabled=true``; usable on any classification or regression run."""

from __future__ import annotations

import time

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Callback

from numerics.sharpness import FlatLoss, keskar_sharpness, sign_ascent_sharpness, top_hessian_eigenvalue


class SharpnessProbe(Callback):
    def __init__(self, eps: float = 1e-3, lbfgs_iters: int = 10, ascent_steps: int = 20, hessian_iters: int = 20, max_samples: int = 4096):
        self.eps, self.lbfgs_iters, self.ascent_steps, self.hessian_iters, self.max_samples = (
            eps,
            lbfgs_iters,
            ascent_steps,
            hessian_iters,
            max_samples,
        )

    def measure(self, net, loss_fn, x, y) -> dict[str, float]:
        """The probes of ``net`` (in eval mode: batch norm and dropout as at test time) on (x, y), its
        first ``max_samples``; the network's mode is restored. A ``seeds=[...]`` run calls it per member."""
        t0 = time.perf_counter()
        x, y = x[: self.max_samples], y[: self.max_samples]
        was_training = net.training
        net.eval()
        try:
            f = FlatLoss(net, loss_fn, x, y)
            results = {
                "sharpness/train_loss": float(f(f.w0).detach()),
                "sharpness/keskar": keskar_sharpness(f, self.eps, self.lbfgs_iters),
                "sharpness/sign_ascent": sign_ascent_sharpness(f, self.eps, self.ascent_steps),
                "sharpness/hessian_top": top_hessian_eigenvalue(f, self.hessian_iters),
            }
        finally:
            net.train(was_training)
        results["sharpness/probe_s"] = time.perf_counter() - t0
        return results

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.is_global_zero or trainer.datamodule is None:
            return
        x, y = train_split(trainer, pl_module, self.max_samples)
        publish(trainer, pl_module, self.measure(pl_module.net, pl_module.loss_fn, x, y))


def train_split(trainer: pl.Trainer, pl_module: pl.LightningModule, max_samples: int):
    """The first ``max_samples`` of the clean training split, on the module's device."""
    x, y = trainer.datamodule.tensors("train")
    return x[:max_samples].to(pl_module.device), y[:max_samples].to(pl_module.device)


def publish(trainer: pl.Trainer, pl_module: pl.LightningModule, results: dict[str, float]) -> None:
    """A probe's numbers: into the run's metrics.json (``probe_results``, read by experiments/train.py)
    and to every logger the run has (TensorBoard, CSV, ...)."""
    pl_module.probe_results = {**getattr(pl_module, "probe_results", {}), **results}
    for logger in trainer.loggers:
        logger.log_metrics(results, trainer.global_step)
