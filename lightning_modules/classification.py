"""Classification: logits (B, C) against integer targets (B,) or soft targets (B, C) (Mixup/CutMix);
accuracy per stage, against the argmax of soft targets."""

from __future__ import annotations

import torch
from torchmetrics.classification import MulticlassAccuracy

from core.errors import ConfigError
from lightning_modules.base import SupervisedModule


class ClassificationModule(SupervisedModule):
    headline = ("acc", "max")

    def __init__(self, *args, num_classes: int | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        if num_classes is None and kwargs.get("rebuild") is not None:
            num_classes = kwargs["rebuild"]["net"]["num_outputs"]
        if num_classes is None:
            raise TypeError("num_classes: needed (or rebuild=<spec>)")
        if num_classes < 2:
            raise ConfigError(f"num_classes={num_classes}: a classifier needs at least 2")
        self.num_classes = num_classes
        self.add_stage_metrics(lambda: {"acc": MulticlassAccuracy(num_classes=num_classes, average="micro")})

    train_metric_names = ("acc",)

    def train_sums(self, out: torch.Tensor, target: torch.Tensor, lead: int = 0) -> tuple[torch.Tensor, int]:
        correct = (out.argmax(-1) == target).flatten(lead).sum(-1, keepdim=True)  # correct predictions (per leading index)
        return correct, target.shape[lead]

    def predictions(self, output: torch.Tensor) -> torch.Tensor:
        return output.argmax(dim=-1)  # (B, C) → (B,)

    def metric_targets(self, y: torch.Tensor) -> torch.Tensor:
        return y.argmax(dim=-1) if y.is_floating_point() else y  # soft (B, C) → the dominant class (B,); labels are integers
