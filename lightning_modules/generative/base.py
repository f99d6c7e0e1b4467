"""What the generative LightningModules share: the data as levels in the unit range, the train /
val / test steps that log every term of a family's loss (``<stage>/<term>``, ``<stage>/loss``
the one that is minimized and monitored), the best validation loss, a NaN guard, and seeded
sampling mapped back to the data's range."""

from __future__ import annotations

import math
from typing import Optional

import pytorch_lightning as pl
import torch
from torch import nn
from torchmetrics import MeanMetric, MinMetric

from lightning_modules.base import NonFiniteLoss, with_scheduler
from lightning_modules.capabilities import Supports
from lightning_modules.generative.levels import Levels
from lightning_modules.optimizers import OptimizerFactory
from lightning_modules.schedulers import SchedulerFactory


class GenerativeModule(pl.LightningModule):
    headline = ("loss", "min")  # val/loss_best
    #: no labels: only the regularizers that act on the data, the optimizer or the loop apply
    supports = Supports(
        regularizers=frozenset({"weight_decay", "decay_all", "augment", "grad_clip", "early_stopping"}),
        labels=False,
        two_pass=False,
        kind="generative",
    )
    TERMS: tuple[str, ...] = ("loss",)  # what ``terms`` returns (a family lists its own)
    TRAIN_TERMS: Optional[tuple[str, ...]] = None  # logged in training when they differ from TERMS

    def logged_metrics(self) -> set[str]:
        """The epoch metrics a run logs (what callbacks.checkpoint.monitor may name)."""
        return {f"val/{t}" for t in self.TERMS} | {f"train/{t}" for t in self.TRAIN_TERMS or self.TERMS} | {"val/loss_best"}

    def __init__(
        self,
        net: Optional[nn.Module] = None,
        levels: Optional[Levels] = None,
        optimizer: Optional[OptimizerFactory] = None,
        scheduler: Optional[SchedulerFactory] = None,
        rebuild: Optional[dict] = None,
    ):
        """The parts as objects, or ``rebuild``: their plain spec (``lightning_modules/rebuild.py``);
        a family's own keys (the VAE's beta, ...) are saved beside it, so ``load_from_checkpoint(path)``
        needs nothing else."""
        super().__init__()
        if rebuild is not None:
            if net is not None:
                raise TypeError("give the parts (net, levels, optimizer, ...) or rebuild=<spec>, not both")
            from lightning_modules import rebuild as parts

            net, levels, optimizer, scheduler = parts.generative(rebuild).values()
            self.save_hyperparameters(ignore=["net", "levels", "optimizer", "scheduler"], logger=False)
        elif net is None or levels is None or optimizer is None:
            raise TypeError("needs net, levels and optimizer, or rebuild=<spec>")
        self.net, self.levels = net, levels
        self.shape = tuple(net.shape)
        self.dims = math.prod(self.shape)  # values per sample: bits per dimension divide by it
        self.optimizer_factory, self.scheduler_factory = optimizer, scheduler
        self.val_mean, self.best_val = MeanMetric(), MinMetric()

    # ---- what a family defines
    def terms(self, u: torch.Tensor, index: torch.Tensor) -> dict[str, torch.Tensor]:
        """Batch means of the loss terms for data ``u`` (unit range) / ``index`` (levels); "loss" is minimized."""
        raise NotImplementedError

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """``n`` samples in the unit range, (n, *shape), every random draw from the CPU ``generator``."""
        raise NotImplementedError

    # ---- shared
    def _terms(self, batch) -> tuple[dict[str, torch.Tensor], int]:
        x = batch[0]  # the labels are not used
        return self.terms(self.levels.unit(x), self.levels.index(x)), len(x)

    def _log_terms(self, stage: str, terms: dict[str, torch.Tensor], n: int) -> None:
        """Epoch means; a term given as (value, count) is a mean over ``count`` of the batch's samples."""
        for name, value in terms.items():
            value, count = value if isinstance(value, tuple) else (value, n)
            self.log(
                f"{stage}/{name}",
                value,
                on_step=False,
                on_epoch=True,
                prog_bar=name == "loss" and stage == "val",
                batch_size=count,
                sync_dist=True,
            )

    def check_finite(self, loss: torch.Tensor) -> None:
        if not torch.isfinite(loss):
            raise NonFiniteLoss(self.global_step, self.current_epoch, float(loss.detach()))

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        terms, n = self._terms(batch)
        self.check_finite(terms["loss"])
        self._log_terms("train", terms, n)
        return terms["loss"]

    def validation_step(self, batch, batch_idx: int) -> None:
        terms, n = self._terms(batch)
        self.val_mean.update(terms["loss"], n)
        self._log_terms("val", terms, n)

    def test_step(self, batch, batch_idx: int) -> None:
        terms, n = self._terms(batch)
        if "mmd" not in terms:  # (the GAN's loss is already this MMD)
            samples = self.sample(n, torch.Generator().manual_seed(batch_idx))  # as many as the batch, seeded
            terms["mmd"] = mmd(samples.flatten(1), self.levels.unit(batch[0]).flatten(1))
        self._log_terms("test", terms, n)

    def on_validation_epoch_end(self) -> None:
        value = self.val_mean.compute()
        self.val_mean.reset()
        if not self.trainer.sanity_checking:
            self.best_val.update(value)
            self.log("val/loss_best", self.best_val.compute(), sync_dist=True)

    def on_train_start(self) -> None:
        self.best_val.reset()

    def configure_optimizers(self):
        return with_scheduler(self.optimizer_factory(self.net), self.scheduler_factory, self.trainer)

    @torch.no_grad()
    def sample_data(self, n: int, seed: int = 0) -> torch.Tensor:
        """``n`` seeded samples in the data's own range (on the CPU), the module left as it was."""
        was = self.training
        self.eval()
        generator = torch.Generator().manual_seed(seed)  # on the CPU: the same samples on any device
        try:
            return self.levels.to_data(self.sample(n, generator)).cpu()
        finally:
            self.train(was)

    def figure_data(self, datamodule) -> dict:
        """What a family shows at the end of training besides samples, as data the callback draws
        (callbacks/samples.py): ``reconstructions`` (2n, *shape) inputs and reconstructions in pairs,
        ``latent`` (codes (n, 2), labels (n,)). Empty by default."""
        return {}


def randn(shape, generator: torch.Generator, device) -> torch.Tensor:
    """Standard normal noise drawn on the CPU with ``generator``, then moved to ``device``."""
    return torch.randn(*shape, generator=generator).to(device)


def categorical(logits: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """One draw per row of ``logits`` (..., levels) → (...) level indices, drawn on the CPU."""
    probs = logits.float().softmax(-1).cpu()
    return torch.multinomial(probs.reshape(-1, probs.shape[-1]), 1, generator=generator).view(probs.shape[:-1]).to(logits.device)


def mmd(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Squared maximum mean discrepancy between samples ``a`` (n, d) and ``b`` (m, d), unbiased,
    with a sum of Gaussian kernels at ½, 1 and 2 × the median squared distance within ``b``: 0 in
    expectation when both come from one distribution, larger the further apart they are."""
    a, b = a.float(), b.float()
    scale = torch.cdist(b, b).pow(2).median().clamp_min(1e-6)

    def kernel(x, y):
        d2 = torch.cdist(x, y).pow(2)
        return sum(torch.exp(-d2 / (f * scale)) for f in (0.5, 1.0, 2.0))

    def mean_offdiag(k):
        n = len(k)
        return (k.sum() - k.diagonal().sum()) / max(n * (n - 1), 1)

    return mean_offdiag(kernel(a, a)) + mean_offdiag(kernel(b, b)) - 2 * kernel(a, b).mean()
