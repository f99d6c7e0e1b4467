"""pytorch-optimizer's SAM adapted to Lightning's closure protocol.

Lightning calls ``optimizer.step(closure)`` with a closure that has not run yet (it runs the
training step and backward). SAM needs the gradient at w before it perturbs the weights, so this
step runs the closure once at w, then lets SAM perturb to w + e, run it again and update from the
gradient at w + e: two forward/backward passes per step. ``perturbed`` is true during the second
pass, so the module logs the loss at w only.
"""

from __future__ import annotations

import torch
from pytorch_optimizer.optimizer.sam import SAM


class ClosureSAM(SAM):
    perturbed = False

    def first_step(self, zero_grad: bool = False):
        super().first_step(zero_grad)
        self.perturbed = True

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
