"""The callbacks a run adds by name beside its own (``experiments/build.py::build_callbacks``): the
probes of its final weights (``callbacks.sharpness``, ``callbacks.hessian``, ``callbacks.landscape``)
and the weight average it trains (``regularization.ema_decay``, ``swa_lr`` + ``swa_start``), each
built from its config section, and the check of ``callbacks.landscape.between`` before training."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from omegaconf import DictConfig
from pytorch_lightning.callbacks import Callback

from callbacks.averaging import EMAWeights, SWAWeights
from callbacks.hessian import HessianProbe
from callbacks.landscape import LandscapeProbe
from callbacks.sharpness import SharpnessProbe
from core.errors import ConfigError
from experiments.seeds import seeds_of


def sharpness_probe(cfg: DictConfig) -> SharpnessProbe:
    sharp = cfg.callbacks.sharpness
    return SharpnessProbe(sharp.eps, sharp.lbfgs_iters, sharp.ascent_steps, sharp.hessian_iters, sharp.max_samples)


def weight_averaging(reg: DictConfig) -> Optional[Callback]:
    """``regularization.ema_decay`` or ``swa_lr`` + ``swa_start`` (checked by experiments/validation.py), or None."""
    if reg.get("ema_decay") is not None:
        return EMAWeights(decay=float(reg.ema_decay))
    if reg.get("swa_lr") is not None:
        return SWAWeights(float(reg.swa_lr), int(reg.swa_start) - 1)
    return None


def landscape_probe(cfg: DictConfig, run_dir: Path) -> LandscapeProbe:
    s = cfg.callbacks.landscape
    other = None if s.between is None else Path(str(s.between)).expanduser().resolve()
    return LandscapeProbe(s.points, float(s.span), s.plane, other, s.max_samples, s.seed, run_dir, cfg.callbacks.figures, cfg.run_test)


def check_landscape(cfg: DictConfig, module) -> None:
    """``callbacks.landscape.between``: a finished run whose network has this one's parameters, shape for shape."""
    s = cfg.callbacks.landscape
    if not s.enabled:
        return
    if seeds_of(cfg) is not None:
        raise ConfigError(
            f"callbacks.landscape.enabled=true with seeds={seeds_of(cfg)}: the landscape is drawn for one network; train one seed"
        )
    if s.between is None:
        return
    from callbacks.landscape import checkpoint_of
    from experiments.train import check_checkpoint

    other = Path(str(s.between)).expanduser().resolve()
    path = checkpoint_of(other) if other.is_dir() else None
    if path is None:
        raise ConfigError(f"callbacks.landscape.between={s.between}: not a run directory with a checkpoint (checkpoints/last.ckpt)")
    state = check_checkpoint(path, "callbacks.landscape.between")["state_dict"]
    s.between = str(other)  # saved absolute with the run's config: a resume from elsewhere finds it
    theirs = {k.removeprefix("net."): v for k, v in state.items() if k.startswith("net.")}
    ours = {k: tuple(p.shape) for k, p in module.net.named_parameters()}
    diff = [k for k in ours if k not in theirs or tuple(theirs[k].shape) != ours[k]]
    if diff:
        k = diff[0]
        shapes = f"{list(ours.get(k, ()))} here, {list(theirs[k].shape) if k in theirs else 'absent'} there"
        raise ConfigError(
            f"callbacks.landscape.between={s.between}: its network differs from this run's ({k}: {shapes}); give a run of the same model"
        )


def hessian_probe(cfg: DictConfig, figures: Optional[Path] = None) -> HessianProbe:
    h = cfg.callbacks.hessian
    return HessianProbe(h.top_k, h.lanczos_steps, h.trace_samples, h.density_runs, h.density_steps, h.max_samples, figures)
