"""Mixup and CutMix for a whole epoch of training batches at once, on the training device.

The loader hands over one epoch of samples in batch order; each batch gets its own draw (mixed at
all with ``mix_prob``; CutMix rather than Mixup with ``switch_prob`` when both are on; λ ~ Beta(α,
α); for CutMix a box with sides √(1−λ)·(H, W), or a segment of (1−λ)·L for 1-D signals, centred
uniformly, clipped, with λ recomputed from the clipped area). These draws are a few dozen scalars,
made on the host with Python's ``random``; the mixing itself is then a handful of tensor ops over
the whole epoch, instead of a handful per batch (airbench's approach: per-op overhead is what
costs on small batches). Each sample is paired with its mirror in its own batch (batches are
already shuffled), so pairs never cross batches, exactly as per-batch mixing would pair them.

Targets become ``λ_i·onehot(y_i) + (1−λ_i)·onehot(y_pair)`` with λ_i the fraction of sample i that
is its own. Label smoothing applied by the loss to these soft targets equals smoothing first and
mixing after (timm's order), because both are linear.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from core.errors import ConfigError
from core.rules import check_all
from datamodules.rules import REGULARIZATION


@dataclass(frozen=True)
class MixConfig:
    mixup_alpha: float = 0.0
    cutmix_alpha: float = 0.0
    mix_prob: float = 1.0  # probability that a batch is mixed at all
    switch_prob: float = 0.5  # with both on: probability of CutMix instead of Mixup

    def __post_init__(self):
        check_all(REGULARIZATION, vars(self), "regularization")

    @property
    def active(self) -> bool:
        return (self.mixup_alpha > 0 or self.cutmix_alpha > 0) and self.mix_prob > 0


def cutmix_box(shape: tuple[int, ...], lam: float, rng: random.Random) -> tuple[list[tuple[int, int]], float]:
    """[(lo, hi)] of the cut region along each spatial axis of ``shape`` ((H, W) or (L,)), and the
    λ of the clipped box (the fraction of each sample that stays its own)."""
    ratio = math.sqrt(1.0 - lam) if len(shape) == 2 else 1.0 - lam
    bounds, area = [], 1.0
    for size in shape:
        cut = int(size * ratio)
        centre = rng.randrange(size)
        lo, hi = min(max(centre - cut // 2, 0), size), min(max(centre + cut - cut // 2, 0), size)
        bounds.append((lo, hi))
        area *= (hi - lo) / size
    return bounds, 1.0 - area


def draw_batches(n: int, batch_size: int, spatial: tuple[int, ...], cfg: MixConfig, rng: random.Random) -> list[dict]:
    """One draw per batch of an epoch of ``n`` samples: kind (None, "mixup", "cutmix"), λ, box."""
    draws = []
    for start in range(0, n, batch_size):
        d = {"start": start, "stop": min(start + batch_size, n), "kind": None, "lam": 1.0, "box": None}
        if cfg.active and rng.random() < cfg.mix_prob:
            if cfg.cutmix_alpha > 0 and (cfg.mixup_alpha == 0 or rng.random() < cfg.switch_prob):
                d["box"], d["lam"] = cutmix_box(spatial, rng.betavariate(cfg.cutmix_alpha, cfg.cutmix_alpha), rng)
                d["kind"] = "cutmix"
            else:
                d["kind"], d["lam"] = "mixup", rng.betavariate(cfg.mixup_alpha, cfg.mixup_alpha)
        draws.append(d)
    return draws


def mix_epoch(x: torch.Tensor, y: torch.Tensor, num_classes: int, draws: list[dict]) -> tuple[torch.Tensor, torch.Tensor]:
    """Apply per-batch ``draws`` to an epoch ``x`` (N, C, *spatial), labels ``y`` (N,); returns the
    mixed inputs and soft targets (N, num_classes). Per-batch values reach the samples by indexing
    with each sample's batch number: no Python loop over samples."""
    n, device, spatial = len(y), x.device, tuple(x.shape[2:])
    has_cut = any(d["kind"] == "cutmix" for d in draws)
    if has_cut and len(spatial) not in (1, 2):
        raise ConfigError(f"regularization.cutmix_alpha: CutMix needs images (N, C, H, W) or signals (N, C, L), got {tuple(x.shape)}")
    batch_size = draws[0]["stop"] - draws[0]["start"]
    i = torch.arange(n, device=device)
    b = i // batch_size  # each sample's batch
    start = b * batch_size
    pair = start + torch.clamp(start + batch_size, max=n) - 1 - i  # mirror within the batch
    own = torch.tensor([d["lam"] for d in draws], device=device, dtype=x.dtype)[b]  # (N,) fraction that stays its own
    keep = torch.tensor([d["lam"] if d["kind"] == "mixup" else 1.0 for d in draws], device=device, dtype=x.dtype)[b]
    keep = keep.view(n, *([1] * (x.ndim - 1)))  # (N, 1, 1[, 1]): the weight of a sample's own pixels
    if has_cut:
        boxes = torch.tensor([[v for lo_hi in (d["box"] or [(0, 0)] * len(spatial)) for v in lo_hi] for d in draws], device=device)
        bounds = boxes[b].view(n, len(spatial), 2)
        inside = torch.ones((n, *spatial), dtype=torch.bool, device=device)
        for axis, size in enumerate(spatial):
            shape = [1] * (len(spatial) + 1)
            shape[axis + 1] = size
            pos = torch.arange(size, device=device).view(shape)
            lo = bounds[:, axis, 0].view([n] + [1] * len(spatial))
            hi = bounds[:, axis, 1].view([n] + [1] * len(spatial))
            inside &= (pos >= lo) & (pos < hi)
        keep = torch.where(inside.unsqueeze(1), torch.zeros((), dtype=x.dtype, device=device), keep)  # (N, 1, *spatial)
    mixed = torch.lerp(x[pair], x, keep)  # keep·x + (1 − keep)·x_pair
    target = F.one_hot(y, num_classes).to(x.dtype)
    return mixed, torch.lerp(target[pair], target, own.view(n, 1))
