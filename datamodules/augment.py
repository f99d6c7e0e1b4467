"""Label-preserving augmentation policies, as batched tensor ops on the training device.

- images (B, C, H, W): random translation by up to ``pad`` pixels (1/8 of the side) and, from
  16 × 16 up, a small random affine map with it (rotation within ±10°, scale within ±10%): one
  bilinear ``grid_sample`` does all three. Below 16 × 16 (digits' 8 × 8) resampling would blur the
  strokes away, so the translation is an exact integer shift (pad with zeros, crop back).
  Only where the dataset says mirror images keep their label, a horizontal flip with probability
  1/2: never for digits or MNIST (a mirrored 2 is no 2).
- signals (B, C, L): random circular shift by up to L/8 steps and amplitude scaling in [0.9, 1.1].
Tabular data and sequences have no label-preserving policy: asking for one is an error.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from core.errors import ConfigError

KINDS_WITH_POLICY = ("image", "signal")
AFFINE_MIN_SIDE = 16  # pixels: smaller images get exact integer shifts only


@dataclass(frozen=True)
class AugmentPolicy:
    kind: str  # "image" | "signal"
    pad: int = 0  # images: max translation in pixels
    flip: bool = False  # images: horizontal flips keep the label
    rotate: float = 0.0  # images: max rotation in degrees
    zoom: float = 0.0  # images: max relative change of scale
    shift: int = 0  # signals: max circular shift in steps
    scale: float = 0.1  # signals: amplitude in [1 - scale, 1 + scale]


def policy_for(kind: str, input_shape: tuple[int, ...], flip: bool) -> AugmentPolicy:
    if kind not in KINDS_WITH_POLICY:
        raise ConfigError(
            f"regularization.augment=true: no label-preserving augmentation for {kind} data; policies exist for: "
            f"{', '.join(KINDS_WITH_POLICY)}"
        )
    if kind == "image":
        small = min(input_shape[-2:]) < AFFINE_MIN_SIDE
        return AugmentPolicy(
            "image", pad=max(1, input_shape[-1] // 8), flip=flip, rotate=0.0 if small else 10.0, zoom=0.0 if small else 0.1
        )
    return AugmentPolicy("signal", shift=max(1, input_shape[-1] // 8))


def random_translate(x: torch.Tensor, pad: int) -> torch.Tensor:
    """Each image moved by its own (dy, dx) in [−pad, pad]²; uncovered pixels are 0. (B, C, H, W).

    One ``gather`` on the flattened zero-padded batch: the crop of each image is a fixed pattern of
    flat indices plus that image's offset dy·(W + 2·pad) + dx (3.5× faster than 2-D indexing)."""
    b, c, h, w = x.shape
    w2 = w + 2 * pad
    padded = torch.nn.functional.pad(x, (pad, pad, pad, pad)).view(b, c, -1)  # (B, C, (H+2p)(W+2p))
    crop = (torch.arange(h, device=x.device).view(h, 1) * w2 + torch.arange(w, device=x.device).view(1, w)).view(1, 1, h * w)
    offset = torch.randint(0, 2 * pad + 1, (b, 1, 1), device=x.device) * w2 + torch.randint(0, 2 * pad + 1, (b, 1, 1), device=x.device)
    return padded.gather(2, (crop + offset).expand(b, c, h * w)).view(b, c, h, w)


def random_affine(x: torch.Tensor, rotate: float, zoom: float, shift: int = 0) -> torch.Tensor:
    """Each image rotated by its own angle in [−rotate, rotate] degrees, scaled by its own factor in
    [1 − zoom, 1 + zoom] about the centre and shifted by up to ``shift`` pixels; one sampling grid +
    grid_sample (bilinear, zeros outside) for the whole batch."""
    b, _, h, w = x.shape
    rand = lambda: 2 * torch.rand(b, device=x.device) - 1  # noqa: E731  U(−1, 1) per image
    angle, scale = torch.deg2rad(rotate * rand()), 1 + zoom * rand()
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    tx, ty = 2 * shift / w * rand(), 2 * shift / h * rand()  # in grid units: the image spans [−1, 1]
    theta = torch.stack([torch.stack([cos, -sin, tx], 1), torch.stack([sin, cos, ty], 1)], 1)  # (B, 2, 3)
    return torch.nn.functional.grid_sample(x, affine_grid(theta, h, w), mode="bilinear", padding_mode="zeros", align_corners=False)


def affine_grid(theta: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """``F.affine_grid(theta, (B, C, h, w), align_corners=False)`` as one matmul: (B, 2, 3) → (B, h, w, 2).
    The same values (to float rounding) at a sixteenth of the time on the CPU (0.27 vs 4.4 ms for
    1,257 images of 28 × 28), where torch's version was three quarters of the augmentation's cost."""
    xs = (torch.arange(w, device=theta.device) * 2 + 1) / w - 1  # pixel centres in [−1, 1]
    ys = (torch.arange(h, device=theta.device) * 2 + 1) / h - 1
    base = torch.stack([xs.expand(h, w), ys[:, None].expand(h, w), torch.ones(h, w, device=theta.device)], -1).view(h * w, 3)
    return torch.matmul(theta.reshape(-1, 3), base.T.to(theta.dtype)).view(-1, 2, h, w).permute(0, 2, 3, 1)


def augment(x: torch.Tensor, policy: AugmentPolicy) -> torch.Tensor:
    if policy.kind == "image":
        if policy.rotate or policy.zoom:
            x = random_affine(x, policy.rotate, policy.zoom, policy.pad)
        else:
            x = random_translate(x, policy.pad)
        if policy.flip:
            flip = torch.rand(x.shape[0], 1, 1, 1, device=x.device) < 0.5
            x = torch.where(flip, x.flip(-1), x)
        return x
    b, _, length = x.shape
    shift = torch.randint(-policy.shift, policy.shift + 1, (b, 1, 1), device=x.device)
    idx = (torch.arange(length, device=x.device).view(1, 1, length) - shift) % length
    scale = 1 + policy.scale * (2 * torch.rand(b, 1, 1, device=x.device) - 1)
    return torch.gather(x, 2, idx.expand_as(x)) * scale
