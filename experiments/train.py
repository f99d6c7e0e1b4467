"""One run: check the config, build, fit, test, then write the results (metrics.json last)."""
from __future__ import annotations

import logging
import shutil
import time
import warnings
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from experiments.cluster import launch_problem
from experiments.validation import ConfigError, check_config

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


class Interrupted(RuntimeError):
    """SIGTERM or SIGUSR1 stopped training after its state was saved; ``resume=<run_dir>`` continues."""


def discard_unfinished(run_dir: Path) -> None:
    """Remove a directory that Hydra created for a run (or study) that never started training."""
    if run_dir.is_dir() and not any((run_dir / name).exists() for name in ("metrics.json", "checkpoints", "members")):
        shutil.rmtree(run_dir, ignore_errors=True)


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The newest state to continue from: ``checkpoints/last.ckpt`` (every epoch, and on SIGTERM or
    SIGUSR1) or an ``hpc_ckpt_N.ckpt`` that Lightning writes when SLURM signals a requeue."""
    found = [p for p in [run_dir / "checkpoints" / "last.ckpt", *run_dir.glob("hpc_ckpt_*.ckpt")] if p.is_file()]
    return max(found, key=lambda p: p.stat().st_mtime_ns) if found else None


def resume(run_dir: Path, fresh_dir: Path, report: bool = True) -> dict[str, Any]:
    """``resume=<run_dir>``: continue an interrupted run from its ``last.ckpt`` with its own saved
    config (epochs, optimizer and scheduler state, batch order and data augmentation per epoch are
    all restored or seeded by epoch); ``fresh_dir``, Hydra's directory for this invocation, is removed."""
    run_dir = Path(run_dir).resolve()
    saved, last = run_dir / ".hydra" / "config.yaml", latest_checkpoint(run_dir)
    problem = ("already finished (it has metrics.json)" if (run_dir / "metrics.json").exists() else
               None if saved.exists() and last else "is not a run directory with .hydra/config.yaml and checkpoints/last.ckpt")
    if problem:
        discard_unfinished(fresh_dir)
        raise ConfigError(f"resume={run_dir}: {problem}")
    if fresh_dir.resolve() != run_dir:
        shutil.rmtree(fresh_dir, ignore_errors=True)
    cfg = OmegaConf.load(saved)
    return train(cfg, run_dir, report=report, resume_from=last)


def train(cfg: DictConfig, run_dir: Path, report: bool = True, resume_from: Path | None = None) -> dict[str, Any]:
    """Train and test as ``cfg`` says, with outputs in ``run_dir``; return the final metrics.
    ``report=False`` skips the results table (studies print one line per member instead)."""
    start = time.perf_counter()
    for pattern in QUIET:
        warnings.filterwarnings("ignore", message=pattern)
    try:
        check_config(cfg)
        problem = launch_problem(cfg.trainer)
        if problem:
            raise ConfigError(problem)
        if resume_from is None and ((run_dir / "metrics.json").exists() or (run_dir / "checkpoints").exists()):
            raise ConfigError(f"hydra.run.dir={run_dir}: already holds a run; choose a new directory")
        import pytorch_lightning as pl

        from experiments import build
        from pytorch_lightning.utilities.exceptions import SIGTERMException

        from lightning_modules.base import NonFiniteLoss
        from lightning_modules.nets.common import count_parameters

        pl.seed_everything(cfg.seed, workers=True, verbose=False)
        dm = build.build_datamodule(cfg)
        module = build.build_module(cfg, dm)
        sizes = dm.split_sizes()
        trainer = build.build_trainer(cfg, run_dir, has_val=sizes["val"] > 0)
    except (ConfigError, ValueError, TypeError) as exc:
        discard_unfinished(run_dir)
        raise ConfigError(str(exc)) from exc

    if trainer.is_global_zero:
        (run_dir / ".hydra").mkdir(parents=True, exist_ok=True)
        OmegaConf.save(cfg, run_dir / ".hydra" / "config.yaml", resolve=True)  # Hydra saves it unresolved
        outputs = (f"{module.levels.count} levels a value (generative)" if getattr(module, "generative", False)
                   else f"{dm.num_outputs} classes" if dm.task == "classification" else f"{dm.num_outputs} targets")
        log.info(
            f"{cfg.model.name}: {count_parameters(module.net):,} parameters | {dm.name}: "
            f"train {sizes['train']} / val {sizes['val']} / test {sizes['test']}, input {dm.input_shape} → {outputs}"
        )
    try:
        trainer.fit(module, datamodule=dm, ckpt_path=None if resume_from is None else str(resume_from))
    except SIGTERMException as exc:
        last = run_dir / "checkpoints" / "last.ckpt"
        raise Interrupted(f"stopped by a signal at epoch {trainer.current_epoch}, step {trainer.global_step}; "
                          f"saved {last}; continue with: python experiments/run.py resume={run_dir}") from exc
    except NonFiniteLoss as exc:
        last = run_dir / "checkpoints" / "last.ckpt"
        kept = f"the last good checkpoint is kept: {last}" if last.exists() else "no checkpoint was written before it"
        raise TrainingFailed(f"{exc}; the run stopped before updating the weights with it, {kept}") from exc
    best_name = f"val/{module.headline[0]}_best"
    fit_metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k == best_name}
    fit_metrics.update(getattr(module, "probe_results", {}))  # e.g. callbacks/sharpness.py
    test_metrics: dict[str, float] = {}
    if cfg.run_test:  # false: model selection (e.g. K-fold) that must not see the test split
        try:
            trainer.test(module, datamodule=dm, ckpt_path=cfg.test_ckpt, verbose=False)
        except SIGTERMException as exc:  # training had finished and its checkpoints are written: resume= only tests
            raise Interrupted(f"stopped by a signal while testing; the trained run is saved; continue with: "
                              f"python experiments/run.py resume={run_dir}") from exc
        test_metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("test/")}

    if not trainer.is_global_zero:
        return test_metrics
    from experiments.results import log_hparams, print_table, write_json_atomic

    final = {**test_metrics, **fit_metrics}
    if isinstance(trainer.logger, pl.loggers.TensorBoardLogger):
        log_hparams(trainer.logger, OmegaConf.to_container(cfg, resolve=True), final)
    ckpt = trainer.checkpoint_callback
    tested = ckpt.best_model_path if cfg.test_ckpt == "best" else ckpt.last_model_path
    record = {
        **final,
        "model": cfg.model.name,
        "data": cfg.data.name,
        "seed": int(cfg.seed),
        "epochs": int(trainer.current_epoch),
        "steps": int(trainer.global_step),
        "params": count_parameters(module.net),
        "test_checkpoint": str(Path(tested).relative_to(run_dir)) if tested else None,
        "wall_s": round(time.perf_counter() - start, 3),
    }
    write_json_atomic(run_dir / "metrics.json", record)
    if report:
        print_table(f"{cfg.name} (seed {cfg.seed})", {k: record[k] for k in (*sorted(final), "epochs", "wall_s")})
    return record
