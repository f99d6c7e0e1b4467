"""ResNet of basic blocks (He et al. 2016), CIFAR-style, for (C, L) signals or (C, H, W) images;
``batch_norm=None`` is on."""

from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import nn

from core.errors import ConfigError
from lightning_modules.nets import MODELS
from lightning_modules.nets.common import SPATIAL, FeaturesAndHead, GlobalPoolHead, check_dropout, conv, halved, norm, spatial_dims


class BasicBlock(nn.Module):
    """relu(branch(x) + shortcut(x)), branch = conv3 → norm → relu → conv3 → norm (He et al. 2016).
    The shortcut is the identity unless the stride or width changes (then 1×1 conv → norm)."""

    def __init__(self, dims: int, c_in: int, c_out: int, stride: int, bn: bool):
        super().__init__()
        self.branch = nn.Sequential(
            conv(dims, c_in, c_out, 3, stride, bias=not bn),
            norm(dims, c_out, bn),
            nn.ReLU(),
            conv(dims, c_out, c_out, 3, bias=not bn),
            norm(dims, c_out, bn),
        )
        self.shortcut = (
            nn.Identity()
            if stride == 1 and c_in == c_out
            else nn.Sequential(conv(dims, c_in, c_out, 1, stride, 0, bias=not bn), norm(dims, c_out, bn))
        )
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.branch(x) + self.shortcut(x))


@MODELS.register("resnet", inputs=SPATIAL, param_count=(50_000, 70_000))
def resnet(
    input_shape: Sequence[int],
    num_outputs: int,
    widths: Sequence[int] = (16, 32, 64),
    blocks: Sequence[int] = (2, 2, 2),
    dropout: float = 0.0,
    batch_norm: Optional[bool] = None,
) -> nn.Module:
    """A CIFAR-style ResNet: 3×3 stem, stages of basic blocks (``blocks[i]`` at width ``widths[i]``;
    depth = 2·Σblocks + 2, the default is ResNet-14), stride 2 at each new stage while the size
    allows, global average pooling → Linear. Batch norm on unless ``batch_norm=false``."""
    dims = spatial_dims("resnet", input_shape)
    check_dropout(dropout)
    if len(widths) != len(blocks) or not blocks or min(blocks) < 1:
        raise ConfigError(f"model.widths={list(widths)}, model.blocks={list(blocks)}: need the same length and >= 1 block per stage")
    bn = True if batch_norm is None else batch_norm
    size, c = min(input_shape[1:]), widths[0]
    layers: list[nn.Module] = [conv(dims, input_shape[0], c, 3, bias=not bn), norm(dims, c, bn), nn.ReLU()]
    for stage, (w, n) in enumerate(zip(widths, blocks)):
        for i in range(n):
            stride = 2 if stage > 0 and i == 0 and size >= 2 else 1
            layers.append(BasicBlock(dims, c, w, stride, bn))
            size, c = (halved(size) if stride == 2 else size), w
    return FeaturesAndHead(nn.Sequential(*layers), GlobalPoolHead(c, num_outputs, dropout))
