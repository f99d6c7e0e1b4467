"""Checkpoints written atomically: to a temporary file beside it first, then renamed over ``<path>`` (a rename
within a folder is atomic on POSIX), so a kill mid-write never leaves a truncated ``last.ckpt``.
They are read with ``torch.load(weights_only=True)``: the template's checkpoints hold only tensors
and plain containers, so loading one (resume, test, a file someone sent) never runs pickled code."""

from __future__ import annotations

from typing import Any, Optional

from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO

from core.files import replaced_atomically


class AtomicCheckpointIO(TorchCheckpointIO):
    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Optional[Any] = None) -> None:
        with replaced_atomically(path) as tmp:  # a failed write (disk full) leaves the previous checkpoint as it was
            super().save_checkpoint(checkpoint, tmp, storage_options)

    def load_checkpoint(
        self, path, map_location: Optional[Any] = lambda storage, loc: storage, weights_only: Optional[bool] = None
    ) -> dict[str, Any]:
        return super().load_checkpoint(path, map_location=map_location, weights_only=True if weights_only is None else weights_only)
