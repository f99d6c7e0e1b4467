"""The one entry point: ``python experiments/run.py [group=option] [key=value] ...``.

A single run writes ``outputs/runs/<time>_<name>/`` and prints ``run_dir: <absolute path>`` last;
``-m`` sweeps write ``outputs/multiruns/<time>_<name>/<job>/``. Every failure a user can cause
ends with one line on stderr (``error: optimizer.lr=-1: must be a number > 0``) and an exit status:
2 bad configuration (nothing is left behind), 3 training failed (the run directory and its last good
checkpoint stay), 4 stopped by SIGTERM or SIGINT (and SIGUSR1 while training; what was finished
is kept; the line names the command that continues). A sweep checks every job before the first starts, runs all jobs
even when some fail, and exits with the highest status of its failed jobs.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # works from any checkout, installed or not
from core import signals  # noqa: E402

if __name__ == "__main__":
    signals.install()  # first thing: SIGTERM and SIGINT end with one line wherever they arrive (core/signals.py)
os.environ.setdefault("HYDRA_FULL_ERROR", "1")  # let errors reach the handler below instead of Hydra's printer
# configs/hydra/launcher/submitit_*.yaml are complete configs that extend the plugin's options of the
# same name (so `hydra/launcher=submitit_slurm` gets the project's preset); Hydra warns about the match.
warnings.filterwarnings("ignore", message=r"(?s).*hydra/launcher/submitit_\w+' is validated against ConfigStore schema")

import hydra  # noqa: E402
from hydra.core.hydra_config import HydraConfig  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

from core.errors import ConfigError  # noqa: E402
from experiments import cluster, rundir  # noqa: E402
from experiments.errors import ConfigExit  # noqa: E402


def is_rank_zero() -> bool:
    """False in the extra processes of a distributed run (they print nothing of their own)."""
    from lightning_fabric.utilities.rank_zero import rank_zero_only

    return getattr(rank_zero_only, "rank", 0) == 0


@hydra.main(version_base="1.3", config_path="configs", config_name="train")
def main(cfg: DictConfig) -> float | None:
    from experiments.seeds import check_seeds
    from experiments.train import (
        Interrupted,
        TrainingFailed,
        latest_checkpoint,
        resume,
        train,
    )  # Lightning is imported only when a job runs (--help stays fast)

    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir).resolve()
    single = hydra_cfg.mode.name == "RUN"
    try:
        if cfg.study.name != "none":
            return study(cfg, run_dir, single)
        if cfg.eval.run is not None:
            return evaluate(cfg, hydra_cfg, run_dir, single)
        if cfg.resume is None and cluster.is_restart() and (run_dir / "metrics.json").exists():
            record = json.loads((run_dir / "metrics.json").read_text())  # a requeued job whose run had finished: nothing to redo
        elif cfg.resume is None and cluster.is_restart() and latest_checkpoint(run_dir):
            record = resume(run_dir, run_dir)  # SLURM requeued the job (or torchrun restarted it): continue in place
        elif cfg.resume is not None:
            allowed = ("resume=", "callbacks.progress=", "trainer.max_epochs=", "hydra.")
            others = [o for o in hydra_cfg.overrides.task if not o.startswith(allowed)]
            if others:  # the run continues with its own saved config: anything else would be silently ignored
                raise ConfigError(
                    f"resume={cfg.resume}: continues with the run's own saved config (only trainer.max_epochs and "
                    f"callbacks.progress may be given); drop the other overrides ({' '.join(others)})"
                )
            given = {o.split("=", 1)[0] for o in hydra_cfg.overrides.task}
            progress = cfg.callbacks.progress if "callbacks.progress" in given else None
            max_epochs = cfg.trainer.max_epochs if "trainer.max_epochs" in given else None
            target = Path(cfg.resume).resolve()
            with own(target, "resume"):
                record = resume(target, run_dir, progress=progress, max_epochs=max_epochs)
            run_dir = target
        else:
            check_seeds(cfg, hydra_cfg.overrides.task)  # seeds=[...] with seed= given too (the command line tells)
            lr_given = [o for o in hydra_cfg.overrides.task if o.split("=", 1)[0].lstrip("+") == "optimizer.lr"]
            if cfg.tune.apply and lr_given:  # the suggestion would replace it: the run (or a sweep's row) would lie about its lr
                raise ConfigError(f"tune.apply=true: trains with the range test's suggestion, not {lr_given[0]}; drop one of them")
            with own(run_dir, "hydra.run.dir"):
                record = train(cfg, run_dir)
    except (ConfigError, rundir.ClaimError, TrainingFailed) as exc:
        code = 3 if isinstance(exc, TrainingFailed) else 2  # 3: training failed (e.g. a NaN loss); the run directory stays
        if code == 2:
            rundir.release(run_dir)  # a refused run leaves nothing behind
        if single:
            raise ConfigExit(str(exc), code=code) from exc
        from experiments.hydra_callbacks import record_failure

        record_failure(run_dir, hydra_cfg.job.num, list(hydra_cfg.overrides.task), str(exc), code)  # the sweep goes on
        return None
    except Interrupted as exc:  # SIGTERM/SIGINT/SIGUSR1 with the state saved: exit 4, resume= continues (a sweep stops too)
        from experiments.search import active, continue_message

        if not single and active(hydra_cfg):
            raise ConfigExit(continue_message(hydra_cfg, str(exc)), code=4) from exc
        raise ConfigExit(str(exc), code=4) from exc
    if single and is_rank_zero():
        print(f"run_dir: {run_dir}", flush=True)
    from experiments.results import selection_value
    from experiments.search import pruned

    stop = pruned(record)
    if stop is not None:  # the search's pruner stopped it: the run is written, the sweeper records the trial as pruned
        raise stop
    return selection_value(record)  # what a Hydra sweeper optimizes: validation only, never the test split


def evaluate(cfg: DictConfig, hydra_cfg, fresh_dir: Path, single: bool) -> None:
    """``eval=<run_dir>``: test a finished run's checkpoint again (on ``eval.data``), into <run_dir>/eval/."""
    from experiments import evaluate as evaluation

    if not single:
        raise ConfigError(f"eval.run={cfg.eval.run}: evaluates one run; drop -m")
    given = [o for o in hydra_cfg.overrides.task]
    data_overrides = [o for o in given if o.startswith("data.")]
    others = [o for o in given if not o.startswith(("eval.", "callbacks.progress=", "hydra.", "data."))]
    if others or (data_overrides and cfg.eval.data is None):
        raise ConfigError(
            f"eval.run={cfg.eval.run}: tests the run with its own saved config (only eval.ckpt, eval.data and, with "
            f"eval.data, data.* keys may be given); drop {' '.join(others or data_overrides)}"
        )
    rundir.release(fresh_dir)  # nothing is written here: the results go to <run_dir>/eval/
    target = Path(cfg.eval.run).resolve()
    evaluation.saved_config(target, "eval")
    data = None
    if cfg.eval.data is not None:
        from hydra import compose

        from datamodules.datasets import DATASETS

        DATASETS.get(str(cfg.eval.data), key="eval.data")
        data = compose(config_name="train", overrides=[f"data={cfg.eval.data}", *data_overrides]).data
    evaluation.evaluate(target, str(cfg.eval.ckpt), data)
    return None


def own(path: Path, key: str):
    """The directory's lock while this process trains in it (not for the extra processes of a
    distributed run, which train in their first process's directory)."""
    if cluster.is_secondary() or not path.is_dir():
        return contextlib.nullcontext()
    return rundir.locked(path, key)  # raises rundir.ClaimError when another process holds it


def study(cfg: DictConfig, run_dir: Path, single: bool) -> dict:
    """``study=NAME``: the study writes into Hydra's run dir, or an earlier one with study.resume."""
    from experiments.studies import run_study
    from experiments.studies.common import study_dir_for
    from experiments.studies.launch import Detached

    study_dir = study_dir_for(cfg, run_dir)
    try:
        with own(study_dir, "study.resume"):  # a second study.resume=true of a study still running is refused
            result = run_study(cfg, study_dir)
    except Detached as exc:  # study.detach=true: the members were submitted
        if is_rank_zero():
            print(f"study_dir: {study_dir}\n{exc}", flush=True)
        return {}
    if single and is_rank_zero():
        print(f"study_dir: {study_dir}", flush=True)
    return result


def stopped_message(exc: signals.Stopped) -> str:
    """What a signal outside Lightning's loops left: a run that can continue, or nothing."""
    kept = [path for path in rundir.claimed_dirs() if not rundir.release(path)]
    trained = rundir.active()  # a resumed run's directory is not claimed by this process
    if trained is not None and trained not in kept and rundir.has_results(trained):
        kept.append(trained)
    signal_name = exc.args[0] if exc.args else "a signal"
    if not kept:
        return f"stopped by {signal_name} before training started; nothing was kept (start the command again)"
    sweeps = [p for p in kept if (p / rundir.SWEEP_CLAIM).exists()]
    if sweeps:
        from hydra_plugins.dlf_optuna_sweeper.optuna_sweeper import STORAGE_FILE

        if (sweeps[-1] / STORAGE_FILE).exists():
            return (
                f"stopped by {signal_name}; the search's finished trials are kept in {sweeps[-1]}; continue it with the "
                f"same command and hydra.sweep.dir={sweeps[-1]}"
            )
        return f"stopped by {signal_name}; the sweep's finished jobs are kept in {sweeps[-1]}"
    path = kept[-1]
    from experiments.studies.common import holds_work

    if holds_work(path):
        return f"stopped by {signal_name}; the study's finished members are kept in {path}; continue with study.resume=true"
    return f"stopped by {signal_name}; what was finished is kept in {path}; continue with: python experiments/run.py resume={path}"


def cli() -> int:
    from experiments.errors import config_error_message

    signals.started()
    sys.argv = [f"eval.run={a[5:]}" if a.startswith("eval=") else a for a in sys.argv]  # eval=<run_dir> is short for eval.run=
    try:
        stamp = cluster.run_stamp(argv=sys.argv[1:])  # torchrun / srun: every process (every node) names the same run directory
        if stamp:
            os.environ[cluster.STAMP_ENV] = stamp
            if cluster.launched_rank() != 0 and not any(a.startswith("hydra.output_subdir") for a in sys.argv):
                sys.argv.append("hydra.output_subdir=null")  # rank 0 alone writes .hydra/
        main()
    except ConfigExit as exc:
        if not cluster.is_secondary():  # DDP's extra processes end the same way; the first one says why
            for line in exc.message.splitlines():
                print(f"error: {line}", file=sys.stderr)
        return exc.code
    except signals.Stopped as exc:
        print(f"error: {stopped_message(exc)}", file=sys.stderr)
        return 4
    except Exception as exc:  # noqa: BLE001 — configuration errors become one line; anything else re-raises
        message = config_error_message(exc)
        if message is None:
            raise
        print(f"error: {message}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(cli())
