"""What happens to an epoch of training data on the device before it is cut into batches:
label-preserving augmentation, then Mixup/CutMix. Never applied to validation or test data."""

from __future__ import annotations

import random
from typing import Optional

import torch

from datamodules.augment import AugmentPolicy, augment
from datamodules.mixing import MixConfig, draw_batches, mix_epoch


class TrainTransform:
    def __init__(self, policy: Optional[AugmentPolicy], mix: MixConfig, num_classes: Optional[int], seed: int):
        self.policy, self.mix, self.num_classes, self.seed = policy, mix, num_classes, seed

    @property
    def active(self) -> bool:
        return self.policy is not None or self.mix.active

    def __call__(self, x: torch.Tensor, y: torch.Tensor, epoch: int, batch_size: int, rank: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """x (N, *input_shape), y (N,) in this epoch's batch order → transformed x, targets. For a
        single batch (the DataLoader path) pass ``batch_size=len(y)`` and the step as ``epoch``."""
        if self.policy is not None:
            x = augment(x, self.policy)
        if self.mix.active:
            rng = random.Random((self.seed * 1_000_003 + epoch) * 1_009 + rank)  # reproducible, and the same after a resume
            x, y = mix_epoch(x, y, self.num_classes, draw_batches(len(y), batch_size, tuple(x.shape[2:]), self.mix, rng))
        return x, y
