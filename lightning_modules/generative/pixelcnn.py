"""PixelCNN: an autoregressive model with an exact likelihood, p(x) = Π_i p(x_i | x_<i) in raster
order. ``bits_per_dim`` = −log₂ p(x) / D, the training loss; ``nll`` is −log p(x) in nats per
sample. Sampling is sequential: one forward pass per position."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from lightning_modules.generative.base import GenerativeModule, categorical


class PixelCNNModule(GenerativeModule):
    TERMS = ("loss", "bits_per_dim", "nll")

    def terms(self, u, index):
        nll = F.cross_entropy(self.net(u), index, reduction="none").flatten(1).sum(1).mean()
        bits = nll / (self.dims * math.log(2))
        return {"loss": bits, "bits_per_dim": bits, "nll": nll}

    def sample(self, n, generator):
        x = torch.zeros(n, *self.shape, device=self.device)  # (n, C, *spatial), filled in raster order
        for position in torch.cartesian_prod(*(torch.arange(s) for s in self.shape[1:])).view(-1, len(self.shape) - 1).tolist():
            where = (slice(None), slice(None), *position)
            logits = self.net(x)[(slice(None), slice(None), slice(None), *position)]  # (n, levels, C)
            x[where] = categorical(logits.movedim(1, -1), generator).float() / (self.levels.count - 1)
        return x
