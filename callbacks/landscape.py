"""At the end of fitting, the loss landscape around the weights reached (numerics/landscape.py):
the training and test loss (validation with ``run_test=false``) along a filter-normalized random
direction and on the plane of two, and with ``between=<run_dir>`` along the line from this run's
weights (α = 0) to another run's (α = 1). Drawn as ``figures/landscape_1d``, ``landscape_2d`` and
``landscape_between``; the curves in ``landscape.json``. Switched on with
``callbacks.landscape.enabled=true``; usable on any classification or regression run."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Optional

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback

from callbacks.sharpness import publish
from core.files import write_json_atomic
from numerics.landscape import Surface, filter_normalized_direction, weights_of

BETWEEN = (-0.5, 1.5)  # the interpolation's range of α: beyond both ends, to see the walls


def checkpoint_of(run_dir: Path) -> Optional[Path]:
    """The checkpoint another run tested (its metrics.json names it), else its last, or None."""
    record = run_dir / "metrics.json"
    try:
        name = json.loads(record.read_text()).get("test_checkpoint") if record.is_file() else None
    except (json.JSONDecodeError, AttributeError):
        name = None
    path = Path(name) if isinstance(name, str) and name else Path("checkpoints") / "last.ckpt"
    path = path if path.is_absolute() else run_dir / path
    return path if path.is_file() else None


def other_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    """The network weights of ``checkpoint_of(run_dir)`` (checked before training: experiments/probes.py::check_landscape)."""
    state = torch.load(checkpoint_of(run_dir), map_location="cpu", weights_only=True)["state_dict"]
    return {k.removeprefix("net."): v for k, v in state.items() if k.startswith("net.")}


class LandscapeProbe(Callback):
    def __init__(
        self,
        points: int = 21,
        span: float = 1.0,
        plane: bool = True,
        between: Optional[Path] = None,
        max_samples: int = 4096,
        seed: int = 0,
        run_dir: Optional[Path] = None,
        figures: bool = True,
        test: bool = True,
    ):
        self.points, self.span, self.plane, self.between, self.max_samples, self.seed = points, span, plane, between, max_samples, seed
        self.run_dir, self.figures, self.test = run_dir, figures, test

    def measure(self, net, loss_fn, splits: dict[str, tuple[torch.Tensor, torch.Tensor]]) -> dict:
        """The curves (and plane) of ``net`` (in eval mode; its mode restored) on each split: JSON-able."""
        was_training = net.training
        net.eval()
        try:
            w = weights_of(net)
            d1, d2 = filter_normalized_direction(w, self.seed), filter_normalized_direction(w, self.seed + 1)
            alphas = np.linspace(-self.span, self.span, self.points)
            out: dict = {"alphas": alphas.tolist(), "line": {}, "plane": {}, "between": {}}
            if self.between is not None:
                out["between_run"], out["between_alphas"] = str(self.between), np.linspace(*BETWEEN, self.points).tolist()
                other = {k: v.to(next(iter(w.values()))) for k, v in other_weights(self.between).items()}
            for split, (x, y) in splits.items():
                surface = Surface(net, loss_fn, x, y)  # on_fit_end took the first max_samples
                out["line"][split] = _pair(*surface.line(w, d1, alphas))
                if self.plane:
                    out["plane"][split] = _pair(*surface.plane(w, d1, d2, alphas))
                if self.between is not None:
                    out["between"][split] = _pair(*surface.between(w, other, np.array(out["between_alphas"])))
        finally:
            net.train(was_training)
        return out

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.is_global_zero or trainer.datamodule is None:
            return
        t0 = time.perf_counter()
        dm = trainer.datamodule
        names = ["train", "test" if self.test else "val"]
        splits = {s: tuple(t[: self.max_samples].to(pl_module.device) for t in dm.tensors(s)) for s in names if dm.split_sizes()[s] > 0}
        found = self.measure(pl_module.net, pl_module.loss_fn, splits)
        seconds = time.perf_counter() - t0
        results = {"landscape/probe_s": seconds}
        center = self.points // 2
        for split, curve in found["line"].items():  # how far the loss climbs at the ends of the line
            results[f"landscape/{split}_loss_rise"] = max(curve["loss"][0], curve["loss"][-1]) - curve["loss"][center]
        publish(trainer, pl_module, results)
        if self.run_dir is not None:
            write_json_atomic(self.run_dir / "landscape.json", found, indent=None, sort_keys=False)
            if self.figures:
                from callbacks.landscape_plots import draw
                from callbacks.loggers import tensorboard_of

                board = tensorboard_of(trainer)
                draw(found, self.run_dir / "figures", None if board is None else board.experiment)


def _pair(losses: np.ndarray, accs: Optional[np.ndarray]) -> dict:
    return {"loss": np.asarray(losses).tolist(), **({} if accs is None else {"acc": np.asarray(accs).tolist()})}
