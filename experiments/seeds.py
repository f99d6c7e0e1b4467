"""``seeds=[...]``: what a K-member fit (one network per seed, trained at once) accepts, checked from
the config alone, before anything is built. The mechanism (``lightning_modules/members.py``) steps
every member's stacked tensors with one optimizer in one process, so a setting that would mix the
members or needs one run per process is refused here, in one line, instead of being approximated."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from omegaconf import DictConfig, OmegaConf

from core.errors import ConfigError
from core.rules import fmt, is_int

NEEDS_ONE = "or train each seed as its own run (seed=<k>, e.g. with -m seed=0,1,2)"
PLATEAU = "would follow each member's own val/loss, and the members share one optimizer"
PER_RUN = "is not done per member"
ON_DEVICE = "the members' batches are gathered from the training split on the device"


def seeds_of(cfg: DictConfig) -> list[int] | None:
    value = cfg.get("seeds")
    return None if value is None else list(OmegaConf.to_container(value) if OmegaConf.is_config(value) else value)


def members_folder(cfg: DictConfig, run_dir: Path) -> Path:
    """Where a seeds run's members go (``<folder>/seed<k>/``): ``<run_dir>/members``, or ``members_dir``
    (relative to the run directory; a study puts a member's seeds beside each other with ``..``)."""
    given = cfg.get("members_dir")
    return Path(run_dir) / "members" if given is None else (Path(run_dir) / str(given)).resolve()


MEMBERS_DIRS = (None, "..")  # inside the run, or beside it (a study's members/<name>/seed<k>)


def check_members_free(cfg: DictConfig, run_dir: Path) -> None:
    """Before a fresh fit, in the process that owns it: no member directory may hold another run's files
    (never written into or mixed with). A study's member left unfinished (``members_dir=..``: a stopped
    run of that seed alone, or an earlier attempt of this fit) is cleared, as a study restarts a member."""
    import shutil

    folder = members_folder(cfg, run_dir)
    for seed in seeds_of(cfg) or []:
        here = folder / f"seed{seed}"
        if not (here.is_dir() and any(here.iterdir())):
            continue
        if cfg.get("members_dir") == ".." and not (here / "metrics.json").exists():
            shutil.rmtree(here)
            continue
        raise ConfigError(f"seeds={seeds_of(cfg)}: member directory {here} already holds files of another run; choose a new directory")


def check_member_optimizer(cfg: DictConfig, shown: str, otherwise: str = "") -> None:
    """One optimizer steps the members' stacked tensors: it must update each entry on its own (SAM
    takes each member's own norm around such an optimizer)."""
    from lightning_modules.optimizers import OPTIMIZERS

    name = cfg.optimizer.name
    stepped = cfg.optimizer.get("base") if name == "sam" else name
    if stepped is not None and stepped in OPTIMIZERS.list() and not OPTIMIZERS.get(stepped).info.get("elementwise"):
        key = "optimizer.base" if name == "sam" else "optimizer"
        elementwise = ", ".join(n for n in OPTIMIZERS.list() if OPTIMIZERS.get(n).info.get("elementwise"))
        raise ConfigError(
            f"{shown} with {key}={stepped}: one optimizer steps the members' stacked tensors, and {stepped}'s whole-tensor "
            f"norms would mix them; use an elementwise optimizer ({elementwise}, or sam around one){otherwise}"
        )


def check_seeds(cfg: DictConfig, overrides: Sequence[str] = ()) -> None:
    """``overrides``: the command line's (Hydra's ``overrides.task``), to tell a ``seed=`` given from its default."""
    value = cfg.get("seeds")
    given_dir = cfg.get("members_dir")
    if value is None:
        if given_dir is not None:
            raise ConfigError(f"members_dir={given_dir}: where the members of seeds=[...] go; without seeds there are none")
        return
    if given_dir not in MEMBERS_DIRS:
        raise ConfigError(
            f"members_dir={given_dir}: accepted: null (<run_dir>/members) or .. (beside the run directory, as a study puts them)"
        )
    plain: Any = OmegaConf.to_container(value) if OmegaConf.is_config(value) else value
    accepted = "a non-empty list of distinct integers >= 0, e.g. seeds=[0,1,2,3]"
    if not isinstance(plain, list) or not plain:
        raise ConfigError(f"seeds={fmt(plain)}: must be {accepted}")
    bad = [v for v in plain if not is_int(v) or v < 0]
    if bad:
        raise ConfigError(f"seeds={fmt(plain)}: {fmt(bad[0])} is not an integer >= 0; must be {accepted}")
    repeated = sorted({v for v in plain if plain.count(v) > 1})
    if repeated:
        raise ConfigError(f"seeds={fmt(plain)}: {repeated[0]} is repeated; must be {accepted}")
    shown = f"seeds={fmt(plain)}"
    if any(o.split("=", 1)[0].lstrip("+~") == "seed" for o in overrides):
        raise ConfigError(f"{shown} with seed= given too: seeds=[...] trains one member per seed; drop one of them")
    from experiments.build import is_generative

    if cfg.get("study") is not None and cfg.study.get("name", "none") != "none":
        raise ConfigError(f"{shown} with study={cfg.study.name}: a study sets its members' seeds itself (study.seeds); drop seeds")
    if is_generative(cfg.model.name):
        raise ConfigError(f"{shown} with model={cfg.model.name}: members are for the discriminative families; {NEEDS_ONE}")
    strategy, nodes = str(cfg.trainer.get("strategy", "auto")), cfg.trainer.get("num_nodes", 1)
    devices = cfg.trainer.get("devices", 1)
    if strategy.startswith(("ddp", "fsdp")) or nodes != 1 or (is_int(devices) and devices > 1):
        raise ConfigError(
            f"{shown} with trainer.strategy={strategy} trainer.devices={devices} trainer.num_nodes={nodes}: the members train in one "
            f"process on one device; use trainer=cpu or trainer=gpu, {NEEDS_ONE}"
        )
    check_member_optimizer(cfg, shown, f", {NEEDS_ONE}")
    monitor = cfg.callbacks.checkpoint.monitor
    if not str(monitor).startswith("val/"):
        raise ConfigError(
            f"{shown} with callbacks.checkpoint.monitor={monitor}: each member's best checkpoint is chosen at its validation; "
            "monitor a val/ metric (val/loss, val/acc, ...)"
        )
    every, interval = cfg.trainer.get("check_val_every_n_epoch", 1), cfg.trainer.get("val_check_interval", 1.0)
    if cfg.regularization.get("early_stopping") is not None and (every != 1 or interval not in (1, 1.0)):
        raise ConfigError(
            f"{shown} with regularization.early_stopping and trainer.check_val_every_n_epoch={every} "
            f"trainer.val_check_interval={interval}: a member stops where its lone run would only when it validates once "
            "an epoch; validate every epoch, or drop early stopping"
        )
    refused = (  # (key, value, fine, why, what to use)
        ("scheduler", cfg.scheduler.name, cfg.scheduler.name != "plateau", PLATEAU, "another scheduler (step, cosine, ...)"),
        ("trainer.compile", True, not cfg.trainer.get("compile", False), PER_RUN, "false"),
        ("tune.lr_find", True, not cfg.tune.get("lr_find"), PER_RUN, "false (find the lr with a single run first)"),
        ("trainer.fast_dev_run", cfg.trainer.get("fast_dev_run"), not cfg.trainer.get("fast_dev_run"), PER_RUN, "false (or a single run)"),
        ("data.num_workers", cfg.data.num_workers, cfg.data.num_workers == 0, ON_DEVICE, "0"),
        ("data.loader", cfg.data.loader, cfg.data.loader != "dataloader", ON_DEVICE, "device or auto"),
        (
            "regularization.ema_decay",
            cfg.regularization.get("ema_decay"),
            cfg.regularization.get("ema_decay") is None,
            PER_RUN,
            f"null, {NEEDS_ONE}",
        ),
        (
            "regularization.swa_lr",
            cfg.regularization.get("swa_lr"),
            cfg.regularization.get("swa_lr") is None,
            PER_RUN,
            f"null, {NEEDS_ONE}",
        ),
    )
    for key, value, fine, why, use in refused:
        if not fine:
            raise ConfigError(f"{shown} with {key}={fmt(value) if isinstance(value, bool) else value}: {why}; use {use}")
