"""Config → objects. The only place that knows both the config layout and the components, so
networks, modules and DataModules never see Hydra. Each ``regularization`` key is routed here to
the component that applies it."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.callbacks import Callback, EarlyStopping, ModelCheckpoint, ModelSummary
from pytorch_lightning.utilities.exceptions import MisconfigurationException

from callbacks.averaging import RefreshBatchNorm
from callbacks.checkpoint_io import AtomicCheckpointIO
from callbacks.history import History
from callbacks.members import MemberRecords
from callbacks.plots import RunFigures
from callbacks.preemption import Preemption
from callbacks.progress import progress_callbacks
from callbacks.samples import SampleGrids
from core.errors import ConfigError
from core.rules import fmt
from datamodules.datasets import DATASETS
from datamodules.mixing import MixConfig
from datamodules.tensor_datamodule import TensorDataModule
from experiments import lr_find
from experiments.loggers import build_loggers
from experiments.probes import hessian_probe, landscape_probe, sharpness_probe, weight_averaging
from experiments.seeds import members_folder, seeds_of
from lightning_modules import rebuild
from lightning_modules.base import SupervisedModule
from lightning_modules.capabilities import Supports
from lightning_modules.classification import ClassificationModule
from lightning_modules.generative import MODULES as GENERATIVE_MODULES
from lightning_modules.generative import GenerativeModule, module_keys
from lightning_modules.generative.levels import Levels
from lightning_modules.members import MembersModule
from lightning_modules.optimizers import OPTIMIZERS, optimizer_from_spec
from lightning_modules.regression import RegressionModule

LAST = "last"  # checkpoints/last.ckpt


def _plain(node: Any) -> Any:
    return OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node


def _without_name(node: DictConfig) -> dict:
    d = _plain(node)
    d.pop("name", None)
    return d


def is_generative(name: str) -> bool:
    return name in GENERATIVE_MODULES


#: every regularizer's neutral value, from the ``none`` preset: a key a module does not apply must hold it
NEUTRAL = OmegaConf.to_container(OmegaConf.load(Path(__file__).parent / "configs" / "regularization" / "none.yaml"))


def neutral_hint(value: Any) -> str:
    """How to put a regularizer back to its neutral ``value``, for a message."""
    return "leave it null" if value is None else f"set it to {str(value).lower() if isinstance(value, bool) else f'{value:g}'}"


#: keys that act only through others (mixing needs an alpha): checked through those
ACTS_THROUGH = ("mix_prob", "switch_prob")


def check_regularizers(reg: DictConfig, applied: frozenset[str], what: str) -> None:
    """Every regularizer outside ``applied`` at its neutral value (``batch_norm=false``, off, counts
    as null does), or a one-line error naming it and ``what`` would ignore it."""
    for key, neutral in NEUTRAL.items():
        value = _plain(reg[key])
        if key in applied or key in ACTS_THROUGH or value == neutral or (neutral is None and value is False):
            continue
        raise ConfigError(f"regularization.{key}={fmt(value)}: not applied by {what}; {neutral_hint(neutral)}")


def check_two_pass(key: str, optimizer: str, supports: Supports, what: str) -> None:
    if not supports.two_pass and OPTIMIZERS.get(optimizer, key=key).info.get("two_pass"):
        raise ConfigError(f"{key}={optimizer}: not supported by {what}; choose another optimizer")


def check_supported(cfg: DictConfig, supports: Supports, name: str) -> None:
    """Refuse every setting the module for ``model=name`` declares it does not apply
    (``lightning_modules/capabilities.py``): one generic check, whatever the family."""
    reg, what = cfg.regularization, f"the {supports.kind} model {name!r}"
    if supports.regularizers is not None:
        check_regularizers(reg, supports.regularizers, what)
    if not supports.labels:
        if cfg.callbacks.stop_at_train_acc is not None:
            raise ConfigError(
                f"callbacks.stop_at_train_acc={cfg.callbacks.stop_at_train_acc}: {supports.kind} models have no accuracy; leave it null"
            )
        for probe in ("sharpness", "hessian", "landscape"):
            if cfg.callbacks[probe].enabled:
                raise ConfigError(
                    f"callbacks.{probe}.enabled=true: the {probe} probes need a classifier or regressor, not {what}; set it to false"
                )
    check_two_pass("optimizer", cfg.optimizer.name, supports, what)
    if not supports.automatic_optimization:  # optimizers stepped by hand: what Lightning would do per step is not done
        strategy = str(cfg.trainer.get("strategy", "auto"))
        accumulate = cfg.trainer.get("accumulate_grad_batches", 1)
        for key, value, fine, use in (
            ("scheduler", cfg.scheduler.name, cfg.scheduler.name == "none", "scheduler=none"),
            ("regularization.grad_clip", reg.grad_clip, reg.grad_clip is None, "null"),
            ("trainer.accumulate_grad_batches", accumulate, accumulate == 1, "1"),
            ("trainer.strategy", strategy, not strategy.startswith(("ddp", "fsdp")), "trainer=cpu or trainer=gpu"),
            ("tune.lr_find", lr_find.wanted(cfg), not lr_find.wanted(cfg), "false"),  # Lightning's range test steps one optimizer itself
        ):
            if not fine:
                shown = fmt(value) if isinstance(value, bool) else value  # as the command line writes it: true, cosine
                raise ConfigError(f"{key}={shown}: model={name} steps its optimizers by hand and does not support it; use {use}")


def check_generative(cfg: DictConfig) -> tuple[type[GenerativeModule], dict, dict]:
    """What can be refused about a generative family from the config alone: the settings its module
    does not apply and its own optimizers. Returns the module class, its own ``model.*`` keys (the
    optimizers as checked specs) and the network's keys."""
    name = cfg.model.name
    module_class = GENERATIVE_MODULES[name]
    check_supported(cfg, module_class.supports, name)
    hparams = _without_name(cfg.model)
    module_kwargs = {k: hparams.pop(k) for k in module_keys(module_class) if k in hparams}
    for key in ("generator_optimizer", "discriminator_optimizer"):
        if module_kwargs.get(key) is not None:  # {name: ..., lr: ..., ...}: an optimizer spec like the optimizer group's
            module_kwargs[key] = _module_optimizer(f"model.{key}", dict(module_kwargs[key]), cfg.regularization, module_class, name)
    return module_class, module_kwargs, hparams


def build_datamodule(cfg: DictConfig) -> TensorDataModule:
    reg = cfg.regularization
    mix = MixConfig(mixup_alpha=reg.mixup_alpha, cutmix_alpha=reg.cutmix_alpha, mix_prob=reg.mix_prob, switch_prob=reg.switch_prob)
    data = _plain(cfg.data)
    if is_generative(cfg.model.name):  # generative families model the raw values as levels (generative/levels.py)
        data["normalize"] = "none"
    return TensorDataModule(seed=cfg.seed, augment=reg.augment, mix=mix, seeds=seeds_of(cfg), **data)


def member_config(cfg: DictConfig, seed: int) -> DictConfig:
    """The single run one member of ``seeds=[...]`` is: the config with ``seed=<seed>`` and no ``seeds``."""
    single = cfg.copy()
    single.seed, single.seeds, single.members_dir = int(seed), None, None
    return single


def build_members(cfg: DictConfig, dm: TensorDataModule) -> MembersModule:
    """``seeds=[...]``: member i is the module ``seed=seeds[i]`` builds (its network initialized after
    seeding with it, as that run's is), all trained in one fit."""
    dm.check_members()
    lones = []
    for seed in seeds_of(cfg):
        pl.seed_everything(seed, workers=True, verbose=False)
        lones.append(build_supervised(member_config(cfg, seed), dm))
    return MembersModule(lones, seeds_of(cfg))


def build_generative(cfg: DictConfig, dm: TensorDataModule) -> GenerativeModule:
    """A generative family: the network from ``MODELS``, its LightningModule from ``generative.MODULES``;
    the data's levels from the training split; regularizers that need labels or change the
    network are errors here, not silently dropped."""
    module_class, module_kwargs, hparams = check_generative(cfg)
    levels = Levels.fit(torch.from_numpy(dm.arrays("train")[0]), hparams.pop("levels", None))
    spec = {
        "net": net_spec(cfg.model.name, dm.input_shape, dm.info.kind, levels.count, hparams),
        "levels": {"low": levels.low, "high": levels.high, "count": levels.count},
        **optimization_spec(cfg),
    }
    return module_class(rebuild=spec, **module_kwargs)


def _module_optimizer(section: str, spec: dict, reg: DictConfig, module_class: type[GenerativeModule], name: str) -> dict:
    """A module's own optimizer (``model.generator_optimizer``, ...), checked as the optimizer group is,
    its errors naming ``section``."""
    if "name" not in spec:
        raise ConfigError(f"{section}={spec}: needs a name (e.g. {{name: adam, lr: 2e-4}})")
    spec = routed(section, spec, {"weight_decay": reg.weight_decay, "decay_all": reg.decay_all})
    check_two_pass(f"{section}.name", spec["name"], module_class.supports, f"the {module_class.supports.kind} model {name!r}")
    optimizer_from_spec(spec, section)  # checked here, where its keys can be named
    return spec


def build_module(cfg: DictConfig, dm: TensorDataModule) -> SupervisedModule | GenerativeModule:
    module = build_generative(cfg, dm) if is_generative(cfg.model.name) else build_supervised(cfg, dm)
    if cfg.trainer.get("compile", False):
        module.net.compile()  # in place: the same parameter names, so checkpoints load either way
    return module


def routed(group: str, given: dict, routed: dict) -> dict:
    """``given`` (a group's keys) with the regularization keys routed into it; a key set in both places is refused."""
    for key in routed:
        if key in given:
            raise ConfigError(
                f"{group}.{key}: not {'an optimizer' if 'optimizer' in group else 'a model'} key; set regularization.{key}"
                + (" (and regularization.decay_all)" if key == "weight_decay" else "")
            )
    return {**given, **routed}


def optimization_spec(cfg: DictConfig) -> dict[str, dict]:
    """The optimizer and scheduler as plain specs (``lightning_modules/rebuild.py``)."""
    reg = cfg.regularization
    decay = {"weight_decay": reg.weight_decay, "decay_all": reg.decay_all}
    return {
        "optimizer": {"name": cfg.optimizer.name, **routed("optimizer", _without_name(cfg.optimizer), decay)},
        "scheduler": {"name": cfg.scheduler.name, **_without_name(cfg.scheduler)},
    }


def loss_spec(cfg: DictConfig, task: str) -> dict[str, Any]:
    return {"name": cfg.loss.name, "task": task, "label_smoothing": cfg.regularization.label_smoothing, "delta": cfg.loss.delta}


def net_spec(name: str, input_shape: list[int], kind: str, num_outputs: int, hparams: dict) -> dict[str, Any]:
    return {"name": name, "input_shape": list(input_shape), "kind": kind, "num_outputs": int(num_outputs), "hparams": hparams}


def check_components(cfg: DictConfig) -> None:
    """What can be refused without reading data: the optimizer, scheduler and loss settings (a sweep
    checks every job with it before the first starts)."""
    specs = optimization_spec(cfg)
    make_optimizer, make_scheduler = rebuild.optimizer(specs["optimizer"]), rebuild.scheduler(specs["scheduler"])
    try:  # built once on a tiny module: torch's own checks (betas, momentum, ...) refuse a value before training
        make_scheduler(make_optimizer(torch.nn.Linear(2, 2)), 100)
    except (ValueError, TypeError) as exc:
        if isinstance(exc, ConfigError):
            raise
        given = " ".join(f"{group}.{k}={v}" for group in ("optimizer", "scheduler") for k, v in specs[group].items())
        raise ConfigError(f"{given}: refused by torch: {' '.join(str(exc).split())}") from exc
    extra_callbacks(cfg)  # built once to check them: a bad target is refused before any data is read
    if is_generative(cfg.model.name):
        check_generative(cfg)
    else:
        rebuild.loss(loss_spec(cfg, DATASETS.get(cfg.data.name, key="data").info["task"]))


def build_supervised(cfg: DictConfig, dm: TensorDataModule) -> SupervisedModule:
    return supervised_module(cfg, list(dm.input_shape), dm.info.kind, dm.num_outputs, dm.task)


def supervised_module(cfg: DictConfig, input_shape: list[int], kind: str, num_outputs: int, task: str) -> SupervisedModule:
    """The module a run of ``cfg`` trains on data of that shape, kind and task: the network from the
    model registry with the regularizers routed to it, the loss, optimizer, scheduler and penalties.
    (Studies that bring their own tensors build their members' modules with it.)"""
    reg = cfg.regularization
    hparams = routed("model", _without_name(cfg.model), {"dropout": reg.dropout, "batch_norm": reg.batch_norm})
    spec = {
        "net": net_spec(cfg.model.name, input_shape, kind, num_outputs, hparams),
        "loss": loss_spec(cfg, task),
        **optimization_spec(cfg),
        "regularization": {k: reg[k] for k in ("l1", "l2", "decay_all", "input_noise", "weight_noise")},
    }
    return (ClassificationModule if task == "classification" else RegressionModule)(rebuild=spec)


def build_callbacks(cfg: DictConfig, run_dir: Path, has_val: bool) -> tuple[list[Callback], bool]:
    ck = cfg.callbacks.checkpoint
    members = seeds_of(cfg) is not None  # each member selects, stops and keeps its checkpoints itself (callbacks/members.py)
    history = History(run_dir / "history.csv")
    # last.ckpt is the end of the newest finished epoch, always: its own callback (Lightning's
    # save_last writes "last" only in epochs where the monitored metric improved). Without a
    # validation split there is nothing to choose "best" by, and only last.ckpt is kept.
    best = (
        [
            ModelCheckpoint(
                dirpath=run_dir / "checkpoints",
                filename="best-epoch{epoch:03d}",
                auto_insert_metric_name=False,
                monitor=ck.monitor,
                mode=ck.mode,
                save_top_k=1,
            )
        ]
        if has_val and not members
        else []
    )
    last = ModelCheckpoint(
        dirpath=run_dir / "checkpoints",
        filename=LAST,
        monitor=None,
        save_top_k=1,
        enable_version_counter=False,
        save_on_train_epoch_end=True,
    )  # every epoch, also those without validation (check_val_every_n_epoch)
    callbacks: list[Callback] = [*best, last, history, Preemption(run_dir / "checkpoints" / f"{LAST}.ckpt")]
    if members:
        patience = cfg.regularization.early_stopping
        folder = members_folder(cfg, run_dir)
        callbacks.append(MemberRecords(folder, seeds_of(cfg), ck.monitor, ck.mode, patience, cfg.callbacks.stop_at_train_acc))
    elif cfg.callbacks.stop_at_train_acc is not None:  # "trained to the same training accuracy"
        callbacks.append(
            EarlyStopping(
                monitor="train/acc",
                mode="max",
                stopping_threshold=cfg.callbacks.stop_at_train_acc,
                patience=10**9,
                check_on_train_epoch_end=True,
            )
        )
    if cfg.callbacks.sharpness.enabled and not members:  # a seeds run probes each member at its end (train_members.py)
        callbacks.append(sharpness_probe(cfg))
    averager = weight_averaging(cfg.regularization)
    if averager is not None:  # the refresh after the averager: its hooks see the averaged weights in place
        callbacks += [averager, RefreshBatchNorm(averager)]
    if cfg.callbacks.landscape.enabled and not members:  # refused with seeds by check_landscape
        callbacks.append(landscape_probe(cfg, run_dir))
    if cfg.callbacks.hessian.enabled and not members:
        callbacks.append(hessian_probe(cfg, run_dir / "figures" if cfg.callbacks.figures else None))
    if cfg.callbacks.figures:
        callbacks.append(RunFigures(run_dir / "figures", history, cfg.callbacks.histograms_every, test_figures=not members))
        if is_generative(cfg.model.name):
            callbacks.append(SampleGrids(run_dir / "figures", cfg.callbacks.samples_every))
    patience = cfg.regularization.early_stopping
    if patience is not None and not members:
        callbacks.append(EarlyStopping(monitor="val/loss", mode="min", patience=patience))
    if cfg.callbacks.summary_depth:
        callbacks.append(ModelSummary(max_depth=cfg.callbacks.summary_depth))
    progress, enable_bar = progress_callbacks(cfg.callbacks.progress)
    return callbacks + extra_callbacks(cfg) + progress, enable_bar


def extra_callbacks(cfg: DictConfig) -> list[Callback]:
    """``callbacks.extra``: each ``{_target_: ..., ...}`` instantiated by Hydra; anything that is not a
    ``pytorch_lightning`` Callback is a one-line error (``lightning.pytorch``'s classes are another tree)."""
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    made = []
    for i, spec in enumerate(cfg.callbacks.get("extra") or []):
        target = spec.get("_target_") if OmegaConf.is_dict(spec) else None
        if not target:
            raise ConfigError(f"callbacks.extra[{i}]={_plain(spec)}: must be a mapping with a _target_ (a Callback class)")
        if target.startswith("lightning.pytorch."):  # the unified package's classes are another tree than pytorch_lightning's
            raise ConfigError(
                f"callbacks.extra[{i}]={target}: this template runs on pytorch_lightning; use "
                f"{target.replace('lightning.pytorch', 'pytorch_lightning', 1)}"
            )
        try:
            callback = instantiate(spec)
        except InstantiationException as exc:
            raise ConfigError(f"callbacks.extra[{i}]: {' '.join(str(exc).split())}") from exc
        if not isinstance(callback, Callback):
            raise ConfigError(f"callbacks.extra[{i}]={target}: not a pytorch_lightning Callback (a {type(callback).__name__})")
        made.append(callback)
    return made


def build_trainer(cfg: DictConfig, run_dir: Path, has_val: bool, extra_callbacks: Sequence[pl.Callback] = ()) -> pl.Trainer:
    callbacks, enable_bar = build_callbacks(cfg, run_dir, has_val)
    loggers = build_loggers(cfg, run_dir)
    extra: dict[str, Any] = {} if has_val else {"limit_val_batches": 0, "num_sanity_val_steps": 0}
    trainer_keys = {k: v for k, v in _plain(cfg.trainer).items() if k != "compile"}  # compile: applied to the network (build_module)
    extra = {k: v for k, v in extra.items() if k not in trainer_keys}  # no validation split: the user's value still wins (it is moot)
    if trainer_keys.get("profiler") in ("simple", "advanced"):  # its report into the run: <run_dir>/fit-profile.txt, test-profile.txt
        from pytorch_lightning.profilers import AdvancedProfiler, SimpleProfiler

        make = SimpleProfiler if trainer_keys["profiler"] == "simple" else AdvancedProfiler
        trainer_keys["profiler"] = make(dirpath=str(run_dir), filename="profile")
    try:
        return pl.Trainer(
            **trainer_keys,
            default_root_dir=str(run_dir),
            logger=loggers or False,
            callbacks=[*callbacks, *extra_callbacks],
            enable_progress_bar=enable_bar,
            enable_model_summary=bool(cfg.callbacks.summary_depth),  # its depth: callbacks.summary_depth
            gradient_clip_val=cfg.regularization.grad_clip,
            plugins=[AtomicCheckpointIO()],
            **extra,
        )
    except (ValueError, TypeError, MisconfigurationException) as exc:  # Lightning refusing a trainer.* value (strategy, devices, ...)
        given = " ".join(f"trainer.{k}={v}" for k, v in trainer_keys.items())
        raise ConfigError(f"{given}: refused by Lightning: {' '.join(str(exc).split())}") from exc
