"""Checkpoints written atomically: to ``<path>.tmp`` first, then renamed over ``<path>`` (a rename
within a folder is atomic on POSIX), so a kill mid-write never leaves a truncated ``last.ckpt``."""
from __future__ import annotations

import os
from typing import Any, Optional

from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO


class AtomicCheckpointIO(TorchCheckpointIO):
    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Optional[Any] = None) -> None:
        tmp = f"{path}.tmp"
        super().save_checkpoint(checkpoint, tmp, storage_options)
        os.replace(tmp, path)
