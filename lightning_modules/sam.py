"""pytorch-optimizer's SAM adapted to Lightning's closure protocol.

Lightning calls ``optimizer.step(closure)`` with a closure that has not run yet (it runs the
training step and backward). SAM needs the gradient at w before it perturbs the weights, so this
step runs the closure once at w, then lets SAM perturb to w + e, run it again and update from the
gradient at w + e: two forward/backward passes per step. ``perturbed`` is true during the second
pass, so the module logs the loss at w only.

``member_axis = True`` (K seeded members stacked on each tensor's first axis, ``seeds=[...]``): the
perturbation's norm is each member's own, so member i is perturbed as its lone run would be.
"""

from __future__ import annotations

import torch
from pytorch_optimizer.optimizer.sam import SAM


class ClosureSAM(SAM):
    perturbed = False
    member_axis = False

    def first_step(self, zero_grad: bool = False):
        if self.member_axis:
            self._first_step_per_member()
            if zero_grad:
                self.zero_grad()
        else:
            super().first_step(zero_grad)
        self.perturbed = True

    @torch.no_grad()
    def _first_step_per_member(self) -> None:
        """SAM's first step with one norm per member: e = rho · g_i / (‖g_i‖ + eps) (times w² when adaptive)."""

        def weighted(group, p):
            return p.grad * p.abs() if group["adaptive"] else p.grad

        live = [(g, p) for g in self.param_groups for p in g["params"] if p.grad is not None]
        squares = sum(weighted(g, p).flatten(1).pow(2).sum(1) for g, p in live)  # (K,)
        norm = squares.sqrt() + self.perturb_eps
        for group, p in live:
            scale = (group["rho"] / norm).to(p).view(-1, *[1] * (p.ndim - 1))
            self.state[p]["old_p"] = p.clone()
            p.add_((torch.pow(p, 2) if group["adaptive"] else 1.0) * p.grad * scale)

    def second_step(self, zero_grad: bool = False):
        self.perturbed = False
        super().second_step(zero_grad)

    def step(self, closure=None):
        if closure is None:
            raise ValueError("optimizer 'sam' needs a closure that recomputes the loss and gradients")
        with torch.enable_grad():
            loss = closure()  # gradient at w
        super().step(closure)  # perturb, gradient at w + e, restore w, base update
        return loss
