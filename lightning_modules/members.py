"""K seeded runs of one supervised config trained in one fit (``seeds=[...]``).

``MembersModule`` holds the K networks as one ``numerics.members.Members`` (stacked tensors under
``torch.func.vmap``) and applies the single-run module's loss, regularizers and optimizer to each
member: the training loss is the sum of the members' own mean losses, so each member's gradient is
its lone run's; the optimizer steps the stacked tensors elementwise (Adam's moments are per element,
hence per member); SAM's perturbation and gradient clipping take each member's own norm. A training
batch is (K, B, ...), row i from seed i's permutation (``datamodules/member_loader.py``); validation
and test batches are shared.

Every epoch metric is logged per member (``val/acc/seed3``) and as the mean over the members still
training (``val/acc``). ``active`` says which members are still training: a member stopped by its own
early stopping keeps being computed (the stacked step cannot leave it out) but is no longer logged,
selected or checkpointed (``callbacks/members.py``).
"""

from __future__ import annotations

from typing import Sequence

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import vmap

from lightning_modules.base import NonFiniteLoss, SupervisedModule, with_scheduler
from lightning_modules.compat import logger_writes_this_step
from lightning_modules.optimizers import is_perturbed
from lightning_modules.sam import ClosureSAM
from numerics.members import Members

STAGES = ("train", "val", "test")


#: losses that average an elementwise loss over every element: per member, the mean over all but the member axis
ELEMENTWISE = {nn.MSELoss: F.mse_loss, nn.L1Loss: F.l1_loss}


def member_losses(loss_fn: nn.Module, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Each member's mean loss, (K,), from (K, B, ...) outputs and targets: one batched call where the
    loss is known (faster than ``vmap``'s per-call overhead, ≈ 0.3 ms a step), else under ``vmap``."""
    k, b = out.shape[:2]
    if type(loss_fn) is nn.CrossEntropyLoss and loss_fn.weight is None and loss_fn.reduction == "mean":
        flat = F.cross_entropy(out.flatten(0, 1), y.flatten(0, 1), reduction="none", label_smoothing=loss_fn.label_smoothing)
        return flat.view(k, b).mean(1)
    if type(loss_fn) in ELEMENTWISE and loss_fn.reduction == "mean":
        return ELEMENTWISE[type(loss_fn)](out, y, reduction="none").flatten(1).mean(1)
    if type(loss_fn) is nn.HuberLoss and loss_fn.reduction == "mean":
        return F.huber_loss(out, y, reduction="none", delta=loss_fn.delta).flatten(1).mean(1)
    return vmap(loss_fn)(out, y)


def member_tag(name: str, seed: int) -> str:
    """The logged name of one member's metric: ``val/acc`` → ``val/acc/seed3``."""
    return f"{name}/seed{seed}"


class MembersModule(pl.LightningModule):
    def __init__(self, lones: Sequence[SupervisedModule], seeds: Sequence[int], logged: bool = True):
        """``lones[i]``: the single-run module that ``seed=seeds[i]`` builds (its network initialized with that seed).
        ``logged=False``: the epoch values are kept in ``epoch_values`` only, not logged (a study's inner fit,
        with no logger or callback to read them: Lightning's ``self.log`` costs ≈ 1 ms a call, K + 1 calls
        a metric an epoch, which on short epochs measured 5× the training itself)."""
        super().__init__()
        if len(lones) != len(seeds) or not lones:
            raise ValueError("MembersModule: one module per seed")
        first = lones[0]
        self.seeds = [int(s) for s in seeds]
        self.k = len(self.seeds)
        self.logged = logged
        self.net = Members([m.net for m in lones])
        self.loss_fn, self.reg, self.headline = first.loss_fn, first.reg, first.headline
        self.optimizer_factory, self.scheduler_factory = first.optimizer_factory, first.scheduler_factory
        self.metric_names = tuple(first.train_metric_names)
        # the single-run module whose hyperparameters a member's checkpoint carries; not a submodule
        object.__setattr__(self, "lone", first)
        mode = self.headline[1]
        self.register_buffer("active", torch.ones(self.k, dtype=torch.bool))
        self.register_buffer("best_val", torch.full((self.k,), -torch.inf if mode == "max" else torch.inf))
        self.step_losses: torch.Tensor | None = None
        self.epoch_values: dict[str, torch.Tensor] = {}  # stage/name → (K,) of the last finished epoch of that stage
        self._sums: dict[str, torch.Tensor] = {}
        self._counts: dict[str, list[int]] = {}

    # ------------------------------------------------------------------ what the run logs
    def logged_metrics(self) -> set[str]:
        """The epoch metrics a member's selection may monitor (callbacks.checkpoint.monitor): its validation ones."""
        return {"val/loss", f"val/{self.headline[0]}_best", *(f"val/{m}" for m in self.metric_names)}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, ...) → (K, B, ...): every member on the same input."""
        return self.net(x, shared=True)

    # ------------------------------------------------------------------ per-member sums
    def _member_sums(self, out: torch.Tensor, y: torch.Tensor, losses: torch.Tensor) -> tuple[torch.Tensor, int, int]:
        """(K, 1 + m): each member's loss × n and its metric sums; n, and what the metrics divide by."""
        sums, m = self.lone.train_sums(out.detach(), self.lone.metric_targets(y), lead=1)
        n = y.shape[1]
        return torch.cat([losses.detach().unsqueeze(1) * n, sums.float()], 1), n, m

    def _accumulate(self, stage: str, sums: torch.Tensor, n: int, m: int) -> None:
        self._sums[stage] = sums if stage not in self._sums else self._sums[stage] + sums
        counts = self._counts.get(stage, [0, 0])
        self._counts[stage] = [counts[0] + n, counts[1] + m]

    def _finish(self, stage: str) -> dict[str, torch.Tensor]:
        """The stage's epoch values per member, logged per member and as the mean of the active ones."""
        if stage not in self._sums:
            return {}
        n, m = self._counts.pop(stage)
        sums = self._sums.pop(stage)
        values = {"loss": sums[:, 0] / n, **{name: sums[:, 1 + j] / m for j, name in enumerate(self.metric_names)}}
        if sums.shape[1] > 1 + len(self.metric_names):  # the L1/L2 penalty, a last column per sample as the loss
            values["penalty"] = sums[:, -1] / n
        if stage == "val":
            better = values[self.headline[0]] > self.best_val if self.headline[1] == "max" else values[self.headline[0]] < self.best_val
            self.best_val.copy_(torch.where(better & self.active, values[self.headline[0]], self.best_val))
            values[f"{self.headline[0]}_best"] = self.best_val.clone()
        for name, v in values.items():
            self.epoch_values[f"{stage}/{name}"] = v.detach()
            if self.logged:
                self._log_members(f"{stage}/{name}", v, prog_bar=stage != "train" and name != "loss")
        return values

    def _log_members(self, name: str, values: torch.Tensor, prog_bar: bool = False) -> None:
        mask = self.active if name.startswith(("train/", "val/")) else torch.ones_like(self.active)
        if mask.any():
            self.log(name, values[mask].mean(), on_step=False, on_epoch=True, prog_bar=prog_bar)
        for i, seed in enumerate(self.seeds):
            if mask[i]:
                self.log(member_tag(name, seed), values[i], on_step=False, on_epoch=True)

    # ------------------------------------------------------------------ steps
    def _outputs(self, x: torch.Tensor) -> torch.Tensor:
        std = self.reg.weight_noise
        if not std:
            return self.net(x)
        params, _ = self.net.tensors()
        noisy = {name: p + std * torch.randn_like(p) for name, p in params.items()}  # each member's own draw
        return self.net(x, params=noisy)

    def _penalty(self) -> torch.Tensor | None:
        """Each member's ``l1 · Σ|w| + l2 · Σ w²`` over the weights a lone run penalizes, (K,)."""
        l1, l2 = self.reg.l1, self.reg.l2
        if not (l1 or l2):
            return None
        params, _ = self.net.tensors()
        kept = [p for name, p in params.items() if self.reg.decay_all or self.net.decays(name, p)]
        total = 0
        if l1:
            total = total + l1 * sum(p.abs().flatten(1).sum(1) for p in kept)
        if l2:
            total = total + l2 * sum(p.pow(2).flatten(1).sum(1) for p in kept)
        return total

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        x, y = batch  # (K, B, ...), (K, B) or (K, B, k)
        if self.reg.input_noise > 0:
            x = x + self.reg.input_noise * torch.randn_like(x)
        out = self._outputs(x)
        losses = member_losses(self.loss_fn, out, y)  # (K,): each member's mean loss
        penalty = self._penalty()
        totals = losses if penalty is None else losses + penalty
        # a stopped member no longer trains (no gradient) and cannot fail the others
        totals = torch.where(self.active, totals, torch.zeros_like(totals))
        if not torch.isfinite(totals).all():  # one host sync per step, as a lone run's
            bad = [f"seed {s}: {float(v)}" for s, v in zip(self.seeds, totals.detach()) if not torch.isfinite(v)]
            raise NonFiniteLoss(self.global_step, self.current_epoch, "; ".join(bad))  # type: ignore[arg-type]
        optimizer = self.trainer.optimizers[0]
        if not is_perturbed(optimizer):  # SAM's second pass (at w + e) is not what we report
            self.step_losses = losses.detach()  # (K,): this step's loss of each member, for callbacks
            sums, n, m = self._member_sums(out, y, losses)
            if penalty is not None:
                sums = torch.cat([sums, penalty.detach().unsqueeze(1) * n], 1)
            self._accumulate("train", sums, n, m)
            if batch_idx + 1 == self.trainer.num_training_batches:
                self._finish("train")
            if self.logged and logger_writes_this_step(self.trainer):
                self.log("train/lr", optimizer.param_groups[0]["lr"], on_step=True, on_epoch=False)
        return totals.sum()  # the members' parameters are disjoint: each gets its own loss's gradient

    def on_train_epoch_start(self) -> None:
        self._sums.pop("train", None)
        self._counts.pop("train", None)

    def _eval_step(self, batch, stage: str) -> None:
        x, y = batch
        out = self(x)
        ys = y.expand(self.k, *y.shape)
        self._accumulate(stage, *self._member_sums(out, ys, member_losses(self.loss_fn, out, ys)))

    def validation_step(self, batch, batch_idx: int) -> None:
        self._eval_step(batch, "val")

    def test_step(self, batch, batch_idx: int) -> None:
        self._eval_step(batch, "test")

    def on_validation_epoch_start(self) -> None:
        self._sums.pop("val", None)
        self._counts.pop("val", None)

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking:
            self._sums.pop("val", None)
            self._counts.pop("val", None)
            return
        self._finish("val")

    def on_test_epoch_end(self) -> None:
        self._finish("test")

    # ------------------------------------------------------------------ optimization
    def configure_optimizers(self):
        optimizer = self.optimizer_factory(self.net)
        if isinstance(optimizer, ClosureSAM):
            optimizer.member_axis = True  # each member's own perturbation norm
        return with_scheduler(optimizer, self.scheduler_factory, self.trainer)

    def configure_gradient_clipping(self, optimizer, gradient_clip_val=None, gradient_clip_algorithm=None) -> None:
        """``regularization.grad_clip``: by each member's own gradient norm, as ``clip_grad_norm_`` clips a lone run's."""
        if gradient_clip_val is None or gradient_clip_val == 0:
            return
        if gradient_clip_algorithm not in (None, "norm"):
            self.clip_gradients(optimizer, gradient_clip_val, gradient_clip_algorithm)  # by value: elementwise
            return
        grads = [p.grad for p in self.net.parameters() if p.grad is not None]
        norm = sum(g.flatten(1).pow(2).sum(1) for g in grads).sqrt()  # (K,)
        coef = (gradient_clip_val / (norm + 1e-6)).clamp(max=1.0)
        for g in grads:
            g.mul_(coef.view(-1, *[1] * (g.ndim - 1)).to(g))

    # ------------------------------------------------------------------ one member as a lone run
    def member_checkpoint(self, i: int) -> dict:
        """Member i as a single run's checkpoint: its weights under the lone module's names and the
        lone module's hyperparameters, so ``load_from_checkpoint``, ``load_run`` and ``eval=`` load it
        as the run ``seed=seeds[i]`` would have written (weights, no optimizer state)."""
        return {
            "state_dict": {f"net.{k}": v for k, v in self.net.member_state(i).items()},
            "hyper_parameters": dict(self.lone.hparams),
            "epoch": int(self.current_epoch),
            "global_step": int(self.global_step),
            "loops": {},  # the run's own resume state is the whole run's checkpoints/last.ckpt
            "pytorch-lightning_version": pl.__version__,
        }
