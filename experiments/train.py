"""One run: check the config, build, fit, test, then write the results (metrics.json last)."""

from __future__ import annotations

import errno
import logging
import os
import socket
import time
import warnings
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from core import signals
from core.errors import ConfigError
from experiments import rundir
from experiments.cluster import is_secondary
from experiments.preflight import preflight

log = logging.getLogger("dl_foundations")

# Known harmless warnings for tensor-resident data and small runs; anything else still shows.
QUIET = (
    r".*does not have many workers.*",
    r".*smaller than the logging interval.*",
    r".*`isinstance\(treespec, LeafSpec\)` is deprecated.*",
    r".*Checkpoint directory .* exists and is not empty.*",
)


class TrainingFailed(RuntimeError):
    """Training could not go on (e.g. a NaN loss); the message is one line, the run directory is kept."""


class Diverged(TrainingFailed):
    """The loss stopped being finite (the run's lr or init too large for it): a search over such
    settings (a study's lr grid) may count it as the worst candidate instead of failing."""


class Interrupted(RuntimeError):
    """SIGTERM or SIGUSR1 stopped training after its state was saved; ``resume=<run_dir>`` continues."""


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The newest state to continue from: ``checkpoints/last.ckpt`` (every epoch, and on SIGTERM or
    SIGUSR1) or an ``hpc_ckpt_N.ckpt`` that Lightning writes when SLURM signals a requeue."""
    found = [p for p in [run_dir / "checkpoints" / "last.ckpt", *run_dir.glob("hpc_ckpt_*.ckpt")] if p.is_file()]
    return max(found, key=lambda p: p.stat().st_mtime_ns) if found else None


def check_checkpoint(path: Path, key: str) -> dict:
    """Refuse, with one line, a checkpoint that is empty, truncated, not a Lightning checkpoint, or
    that would need pickled Python objects (which are never loaded: weights only). Returns what it loaded."""
    import pickle
    import re

    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:  # weights-only refused a pickled object: it is never executed
        found = re.search(r"Unsupported global: GLOBAL (\S+)", str(exc))
        raise ConfigError(
            f"{key}={path}: holds pickled Python objects ({found.group(1) if found else 'code'}), which are never "
            "loaded (weights only); use a checkpoint this template wrote"
        ) from exc
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        raise ConfigError(f"{key}={path}: not a readable checkpoint (empty, truncated or another format)") from exc
    missing = [k for k in ("state_dict", "epoch", "global_step", "loops") if not isinstance(state, dict) or k not in state]
    if missing:
        raise ConfigError(f"{key}={path}: not a training checkpoint of this template (missing {', '.join(missing)})")
    return state


def epochs_done(run_dir: Path) -> int:
    """Finished epochs of a run, from its history (one row per finished epoch)."""
    import csv

    history = run_dir / "history.csv"
    if not history.is_file():
        return 0
    with open(history, newline="") as f:
        return max((int(float(row["epoch"])) for row in csv.DictReader(f)), default=0)


def resume(
    run_dir: Path, fresh_dir: Path, report: bool = True, progress: str | None = None, max_epochs: int | None = None
) -> dict[str, Any]:
    """``resume=<run_dir>``: continue an interrupted run from its ``last.ckpt`` with its own saved
    config (epochs, optimizer and scheduler state, batch order and data augmentation per epoch are
    all restored or seeded by epoch); ``fresh_dir``, Hydra's directory for this invocation, is removed.
    ``progress`` (callbacks.progress) replaces the saved one; ``max_epochs`` (trainer.max_epochs)
    extends an interrupted or finished run to that many epochs, in the same directory (its
    metrics.json stays until the extended run writes the new one)."""
    run_dir = Path(run_dir).resolve()
    if fresh_dir.resolve() != run_dir:
        rundir.release(fresh_dir)
        if is_secondary():
            rundir.discard_log_only(fresh_dir)
    saved, last = run_dir / ".hydra" / "config.yaml", latest_checkpoint(run_dir)
    finished = (run_dir / "metrics.json").exists()
    if not (saved.exists() and last):
        raise ConfigError(f"resume={run_dir}: is not a run directory with .hydra/config.yaml and checkpoints/last.ckpt")
    if finished and max_epochs is None:
        raise ConfigError(
            f"resume={run_dir}: already finished (it has metrics.json); to train it further: "
            f"resume={run_dir} trainer.max_epochs=<more than {epochs_done(run_dir)}>"
        )
    if not check_checkpoint(last, "resume").get("optimizer_states"):
        raise ConfigError(
            f"resume={run_dir}: its {last.name} holds weights only (a member of a seeds=[...] run); resume the run that trained it"
        )
    cfg = upgraded(OmegaConf.load(saved))
    if max_epochs is not None:
        done = epochs_done(run_dir)
        if not (isinstance(max_epochs, int) and max_epochs > done):
            raise ConfigError(
                f"trainer.max_epochs={max_epochs}: must be an integer above the {done} epochs resume={run_dir} has already done"
            )
        cfg.trainer.max_epochs = max_epochs  # saved into the run's .hydra/config.yaml: it is now a run of that many epochs
    if progress is not None:
        cfg.callbacks.progress = progress
    return train(cfg, run_dir, report=report, resume_from=last)


def upgraded(cfg: DictConfig) -> DictConfig:
    """A config saved by an earlier version of the template, in today's layout (``resume=`` of an
    older run, or a SLURM requeue across an upgrade): ``logger.name`` becomes a key under ``logger``,
    and the callbacks and regularization keys added since take the values those runs had (no summary,
    no extra callbacks, no Hessian or landscape probe, no weight averaging)."""
    if "name" in cfg.logger:
        name = cfg.logger.name
        cfg.logger = {} if name in (None, "none") else {name: {}}
    if "summary_depth" not in cfg.callbacks:
        cfg.callbacks.summary_depth = 0
    if "extra" not in cfg.callbacks:
        cfg.callbacks.extra = []
    defaults = OmegaConf.load(Path(__file__).parent / "configs" / "callbacks" / "default.yaml")
    for probe in ("hessian", "landscape"):  # probes added since: off, as those runs had them
        if probe not in cfg.callbacks:
            cfg.callbacks[probe] = defaults[probe]
    for key in ("ema_decay", "swa_lr", "swa_start"):  # weight averaging added since: off
        if key not in cfg.regularization:
            cfg.regularization[key] = None
    return cfg


OUT_OF_MEMORY = ("out of memory", "can't allocate memory", "cannot allocate memory")


def _out_of_memory(exc: BaseException) -> bool:
    return isinstance(exc, MemoryError) or (isinstance(exc, RuntimeError) and any(s in str(exc).lower() for s in OUT_OF_MEMORY))


def _sizes(cfg: DictConfig) -> str:
    shared = ("name", "init", "init_std")  # not sizes
    model = " ".join(f"model.{k}={v}" for k, v in OmegaConf.to_container(cfg.model, resolve=True).items() if k not in shared)
    return f"model={cfg.model.name} {model} data.batch_size={cfg.data.batch_size}".replace("  ", " ")


def train(cfg: DictConfig, run_dir: Path, report: bool = True, resume_from: Path | None = None) -> dict[str, Any]:
    """Train and test as ``cfg`` says, with outputs in ``run_dir``; return the final metrics.
    ``report=False`` skips the results table (studies print one line per member instead)."""
    start = time.perf_counter()
    for pattern in QUIET:
        warnings.filterwarnings("ignore", message=pattern)
    try:
        preflight(cfg)
        from experiments.build import check_components

        check_components(cfg)  # optimizer, scheduler and loss settings, before any data is read
        if resume_from is None and ((run_dir / "metrics.json").exists() or (run_dir / "checkpoints").exists()):
            raise ConfigError(f"hydra.run.dir={run_dir}: already holds a run; choose a new directory")
        import pytorch_lightning as pl
        from pytorch_lightning.utilities.exceptions import SIGTERMException

        from experiments import build, lr_find, probes
        from experiments.seeds import seeds_of
        from lightning_modules.base import NonFiniteLoss
        from lightning_modules.nets.common import count_parameters

        members = seeds_of(cfg) is not None
        pl.seed_everything(cfg.seed, workers=True, verbose=False)
        dm = build.build_datamodule(cfg)
        module = build.build_members(cfg, dm) if members else build.build_module(cfg, dm)
        range_test = None
        if resume_from is None and lr_find.wanted(cfg):
            range_test = lr_find.range_test(cfg, dm, module)
            applied = "training with it (tune.apply=true)" if cfg.tune.apply else f"training with optimizer.lr={cfg.optimizer.lr:g}"
            print(f"suggested lr: {range_test.suggestion:.4g}; {applied}", flush=True)
            if cfg.tune.apply:
                cfg.optimizer.lr = range_test.suggestion  # saved below: the config shows the lr the run used
            pl.seed_everything(cfg.seed, workers=True, verbose=False)  # the run as it would start without the test
            dm = build.build_datamodule(cfg)
            module = build.build_module(cfg, dm)
        probes.check_landscape(cfg, module)  # between= another run: the same network, before training
        sizes = dm.split_sizes()
        has_val = sizes["val"] > 0
        from experiments.preflight import check_val_interval

        check_val_interval(cfg.trainer, -(-sizes["train"] // cfg.data.batch_size))
        if has_val:
            check_monitor(cfg.callbacks.checkpoint.monitor, module)
        from experiments.search import trial_report

        report_to_trial = trial_report(module) if has_val else None  # an Optuna search's job, with a pruner
        trainer = build.build_trainer(cfg, run_dir, has_val=has_val, extra_callbacks=[report_to_trial] if report_to_trial else [])
        if members:
            from experiments.seeds import check_members_free

            if trainer.world_size > 1:  # e.g. trainer.devices=auto on several GPUs: Lightning would pick DDP
                raise ConfigError(
                    f"seeds={seeds_of(cfg)} with {trainer.world_size} processes (trainer.devices={cfg.trainer.get('devices')}): "
                    "the members train in one process on one device; set trainer.devices=1"
                )
            if resume_from is None:
                check_members_free(cfg, run_dir)
    except ConfigError:
        raise  # anything else raised while building is a bug: it keeps its traceback
    except (MemoryError, RuntimeError) as exc:
        if not _out_of_memory(exc):
            raise
        raise ConfigError(f"out of memory while building the model or the data ({_sizes(cfg)}); make them smaller") from exc

    if trainer.is_global_zero:
        (run_dir / ".hydra").mkdir(parents=True, exist_ok=True)
        OmegaConf.save(cfg, run_dir / ".hydra" / "config.yaml", resolve=True)  # Hydra saves it unresolved
        from experiments.loggers import log_config

        log_config(trainer.loggers, OmegaConf.to_container(cfg, resolve=True))
        if range_test is not None:
            for logger in trainer.loggers:
                logger.log_metrics(range_test.record(), step=0)
        outputs = (
            f"{module.levels.count} levels a value (generative)"
            if build.is_generative(cfg.model.name)
            else f"{dm.num_outputs} classes"
            if dm.task == "classification"
            else f"{dm.num_outputs} targets"
        )
        each = (
            f"{count_parameters(module.lone.net):,} parameters × {module.k} members"
            if members
            else f"{count_parameters(module.net):,} parameters"
        )
        log.info(
            f"{cfg.model.name}: {each} | {dm.name}: "
            f"train {sizes['train']} / val {sizes['val']} / test {sizes['test']}, input {dm.input_shape} → {outputs}"
        )
    if range_test is not None and trainer.is_global_zero:
        from callbacks.loggers import tensorboard_of

        board = tensorboard_of(trainer)
        lr_find.draw(range_test, run_dir / "figures", None if board is None else board.experiment)
    last = run_dir / "checkpoints" / "last.ckpt"
    try:
        with signals.lightning_owns():
            trainer.fit(module, datamodule=dm, ckpt_path=None if resume_from is None else str(resume_from))
    except SIGTERMException as exc:
        raise Interrupted(
            f"stopped by {signals.signal_name()} at epoch {trainer.current_epoch}, step {trainer.global_step}; "
            f"saved {last}; continue with: python experiments/run.py resume={run_dir}"
        ) from exc
    except NonFiniteLoss as exc:
        kept = f"the last good checkpoint is kept: {last}" if last.exists() else "no checkpoint was written before it"
        raise Diverged(f"{exc}; the run stopped before updating the weights with it, {kept}") from exc
    except OSError as exc:
        if exc.errno != errno.ENOSPC:
            raise
        kept = f"the last complete checkpoint is kept: {last}" if last.exists() else "no checkpoint was completed"
        raise TrainingFailed(
            f"no space left on the device while writing the run in {run_dir}; {kept}; "
            f"free some space, then continue with: python experiments/run.py resume={run_dir}"
        ) from exc
    except (MemoryError, RuntimeError) as exc:
        if not _out_of_memory(exc) or trainer.global_step > 0:
            raise
        raise ConfigError(f"out of memory in the first training step ({_sizes(cfg)}); lower data.batch_size or the model's size") from exc
    if members:
        from experiments.train_members import finish

        return finish(cfg, run_dir, trainer, module, dm, start, report, report_to_trial)
    best_name = f"val/{module.headline[0]}_best"
    fit_metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k == best_name}
    fit_metrics.update(getattr(module, "probe_results", {}))  # e.g. callbacks/sharpness.py
    test_metrics: dict[str, float] = {}
    tested = (trainer.checkpoint_callback.best_model_path if cfg.test_ckpt == "best" else str(last)) if cfg.run_test else None
    in_memory = False
    if cfg.run_test and sizes["test"] == 0:
        tested = None
        if trainer.is_global_zero:
            print(
                f"not tested: data.test_fraction={cfg.data.test_fraction} and dataset {dm.name!r} has no test split of its own; "
                "metrics.json holds the validation metrics only",
                flush=True,
            )
    elif cfg.run_test and trainer.fast_dev_run:  # Lightning's debug run writes no checkpoint: test the weights in memory
        tested, in_memory = None, True
        if trainer.is_global_zero:
            print("fast_dev_run: tested with the weights in memory (no checkpoint is written)", flush=True)
    elif cfg.run_test and not tested and trainer.is_global_zero:  # preflight refuses the settings that lead here; said, not skipped
        print("not tested: no best checkpoint was written (validation never ran); metrics.json holds no test metrics", flush=True)
    if tested or in_memory:  # run_test=false: model selection (e.g. K-fold) that must not see the test split
        test(trainer, module, dm, tested, run_dir)
        test_metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("test/")}

    if not trainer.is_global_zero:
        return test_metrics
    from experiments.results import log_hparams, print_table

    final = {**test_metrics, **fit_metrics}
    from callbacks.loggers import tensorboard_of

    board = tensorboard_of(trainer)
    if board is not None:
        log_hparams(board, OmegaConf.to_container(cfg, resolve=True), final)
    record = {
        **final,
        **run_record(cfg, trainer, start),
        "seed": int(cfg.seed),
        "params": count_parameters(module.net),
        "test_checkpoint": str(Path(tested).relative_to(run_dir)) if tested else None,
        **(range_test.record() if range_test is not None else {}),
    }
    if report_to_trial is not None and report_to_trial.pruned_at is not None:
        record["pruned_at_epoch"] = report_to_trial.pruned_at  # the search's pruner stopped it (run.py tells the sweeper)
    write_metrics(run_dir, record)
    from experiments.loggers import publish_figures

    publish_figures(trainer.loggers, run_dir / "figures")  # after metrics.json: a logger's failure never costs the run
    if report:
        print_table(f"{cfg.name} (seed {cfg.seed})", {k: record[k] for k in (*sorted(final), "epochs", "wall_s")})
    return record


def test(trainer, module, dm, ckpt_path: str | None, run_dir: Path) -> None:
    """``trainer.test`` of the fitted run; a stop while testing keeps the trained run (``resume=`` only tests)."""
    from pytorch_lightning.utilities.exceptions import SIGTERMException

    try:
        with signals.lightning_owns():
            trainer.test(module, datamodule=dm, ckpt_path=ckpt_path, verbose=False)
    except SIGTERMException as exc:  # training had finished and its checkpoints are written: resume= only tests
        raise Interrupted(
            f"stopped by {signals.signal_name()} while testing; the trained run is saved; continue with: "
            f"python experiments/run.py resume={run_dir}"
        ) from exc


def write_metrics(run_dir: Path, record: dict) -> None:
    """``metrics.json``, atomically: it marks the run finished, so it is written last."""
    from core.files import write_json_atomic

    try:
        write_json_atomic(run_dir / "metrics.json", record)
    except OSError as exc:
        if exc.errno != errno.ENOSPC:
            raise
        raise TrainingFailed(
            f"no space left on the device while writing {run_dir / 'metrics.json'}; the trained run is saved; "
            f"free some space, then continue with: python experiments/run.py resume={run_dir}"
        ) from exc


def run_record(cfg: DictConfig, trainer, start: float) -> dict[str, Any]:
    """What every run's metrics.json says about where and how long it ran."""
    import torch

    return {
        "model": cfg.model.name,
        "data": cfg.data.name,
        "epochs": int(trainer.current_epoch),
        "steps": int(trainer.global_step),
        "wall_s": round(time.perf_counter() - start, 3),
        "host": socket.gethostname(),  # where it ran (a study's members may run in other processes or machines)
        "pid": os.getpid(),
        "threads": torch.get_num_threads(),  # CPU results depend on it (the order of float sums): a local worker has fewer
        **({"launcher": os.environ["DLF_LAUNCHER"]} if os.environ.get("DLF_LAUNCHER") else {}),
        **({"job_id": os.environ["DLF_JOB_ID"]} if os.environ.get("DLF_JOB_ID") else {}),
    }


def check_monitor(monitor: str, module) -> None:
    """``callbacks.checkpoint.monitor`` must name a metric the run logs (checked before training,
    not when the first checkpoint would be written)."""
    logged = module.logged_metrics()
    if monitor not in logged:
        raise ConfigError(f"callbacks.checkpoint.monitor={monitor!r}: not a metric this run logs; valid: {', '.join(sorted(logged))}")
