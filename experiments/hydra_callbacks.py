"""Hydra callbacks (configs/train.yaml ``hydra.callbacks``): directories are claimed before Hydra
writes into them, and a sweep is checked whole before its first job starts.

Hydra creates the run directory and saves ``.hydra/`` into it before the task function runs, so a
check inside the task comes too late: a refused run would already have overwritten another run's
saved config. ``on_run_start`` runs before that (``experiments/rundir.py`` says how a claim works).

Hydra turns an Exception raised in a callback into a warning, so refusals here raise ``ConfigExit``
(a SystemExit), which ends the process with one line.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, read_write

from core.errors import ConfigError
from experiments import cluster, rundir
from experiments.errors import ConfigExit

SWEEP_DIR_ENV = "DLF_SWEEP_DIR"  # read by hydra.sweep.dir in configs/train.yaml
FAILED = rundir.FAILED


def _overridden(config: DictConfig, key: str) -> bool:
    return any(o.split("=", 1)[0].lstrip("+~") == key for o in config.hydra.overrides.hydra)


def _check_name(config: DictConfig) -> None:
    """``name`` becomes part of the directory's path: refused before anything is created."""
    from experiments.preflight import check_name

    try:
        check_name(config.name)
    except ConfigError as exc:
        raise ConfigExit(str(exc)) from exc


def _search(config: DictConfig) -> bool:
    from experiments.search import active

    return active(config.hydra)


class RunDirectories(Callback):
    def __init__(self) -> None:
        self.held = contextlib.ExitStack()  # a continued search's lock on its sweep directory

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        if cluster.is_secondary() or cluster.is_restart():
            return  # joins (or continues in) the directory its first process claimed
        choice = config.hydra.runtime.choices.get("hparams_search")
        if choice or _search(config):  # without -m the sweeper never runs: the search would be silently ignored
            given = f"hparams_search={choice}" if choice else "hydra/sweeper=optuna"
            raise ConfigExit(f"{given}: a search runs as a sweep; add -m (python experiments/run.py -m {given} ...)")
        explicit = _overridden(config, "hydra.run.dir") or bool(os.environ.get(cluster.STAMP_ENV))
        _check_name(config)
        try:
            path = rundir.claim(config.hydra.run.dir, "hydra.run.dir", unique=not explicit)
        except rundir.ClaimError as exc:
            raise ConfigExit(str(exc)) from exc
        with read_write(config.hydra.run):  # Lightning's DDP children are handed this name
            config.hydra.run.dir = str(path)

    def on_multirun_start(self, config: DictConfig, config_name: str | None = None, **kwargs: Any) -> None:
        if cluster.is_secondary():
            return
        explicit = _overridden(config, "hydra.sweep.dir") or bool(os.environ.get(SWEEP_DIR_ENV))
        _check_name(config)
        search = _search(config)
        if search:
            from experiments import search as hparams_search
            from hydra_plugins.dlf_optuna_sweeper.optuna_sweeper import SearchError

            try:
                jobs = hparams_search.check(config)  # the options, the space and the direction, before anything is created
                continuing = explicit and hparams_search.continues(config, Path(config.hydra.sweep.dir))
            except (SearchError, ConfigError) as exc:  # (Hydra would turn any other exception here into a warning)
                raise ConfigExit(" ".join(str(exc).split())) from exc
        else:
            jobs, continuing = sweep_jobs(list(config.hydra.overrides.task)), False
        try:
            if continuing:  # the same search again: it continues (the sweeper counts finished trials)
                path = Path(config.hydra.sweep.dir)
            else:
                path = rundir.claim(config.hydra.sweep.dir, "hydra.sweep.dir", unique=not explicit, marker=rundir.SWEEP_CLAIM)
            if search:  # held until the search ends: a second invocation on the same folder is refused while it runs
                self.held.enter_context(rundir.locked(path, "hydra.sweep.dir"))
        except rundir.ClaimError as exc:
            raise ConfigExit(str(exc)) from exc
        path = path.resolve()
        with read_write(config.hydra.sweep):
            config.hydra.sweep.dir = str(path)
        os.environ[SWEEP_DIR_ENV] = str(path)  # DDP's extra processes of each job join this folder
        if search or str(config.hydra.sweeper.get("_target_", "")).endswith("BasicSweeper"):
            problems = check_jobs(config, config_name or "train", jobs, numbered=not search)
            if problems:
                self.held.close()
                if not continuing:
                    rundir.release(path)
                raise ConfigExit("\n".join(problems), code=2)

    def on_job_end(self, config: DictConfig, job_return: Any, **kwargs: Any) -> None:
        """A sweep job that raised an unexpected exception: its traceback, and failed.json so that the
        sweep's summary and exit status count it (exit 1). Single runs re-raise it themselves."""
        from hydra.core.utils import JobStatus

        if job_return.status != JobStatus.FAILED or config.hydra.mode.name != "MULTIRUN" or cluster.is_secondary():
            return
        try:
            job_return.return_value
        except Exception as exc:  # noqa: BLE001 — what the job raised
            if type(exc).__name__ == "TrialPruned":  # the search's pruner stopped it: not a failure
                return
            import traceback

            traceback.print_exception(exc, file=sys.stderr)
            record_failure(
                Path(config.hydra.runtime.output_dir),
                config.hydra.job.num,
                list(config.hydra.overrides.task),
                f"{type(exc).__name__}: {exc}",
                1,
            )

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if cluster.is_secondary():
            return
        from experiments import summary

        sweep = Path(config.hydra.sweep.dir)
        try:
            runs = summary.find_runs([sweep])
            if runs:  # summary.csv (a row per job, failed ones too) and summary.md (seeds pooled, by validation)
                summary.write(summary.rows(runs), sweep, f"Sweep {sweep.name}")
            if _search(config):  # trials.csv and the figures; the sweeper wrote optimization_results.yaml
                from experiments import search

                search.report(config)
        finally:
            self.held.close()
        failed = sorted((json.loads(p.read_text()) for p in sweep.glob(f"*/{FAILED}")), key=lambda r: r["job"])
        if failed:
            jobs = ", ".join(f"job {r['job']} (exit {r['exit']})" for r in failed)
            raise ConfigExit(
                f"{len(failed)} job(s) of the sweep failed, the others finished: {jobs}; each failed job's "
                f"{FAILED} says why; sweep: {sweep}",
                code=max(r["exit"] for r in failed),
            )


def sweep_jobs(overrides: list[str]) -> list[tuple[list[str], list[str]]]:
    """The jobs a basic sweep runs, in its order (the cartesian product of the swept values): each
    job's overrides, and the swept ones alone (what tells the jobs apart)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    axes = []
    for o in OverridesParser.create().parse_overrides(overrides):
        if o.is_sweep_override():
            axes.append([(f"{o.get_key_element()}={v}", True) for v in o.sweep_string_iterator()])
        else:
            axes.append([(o.input_line, False)])
    return [([o for o, _ in job], [o for o, swept in job if swept]) for job in itertools.product(*axes)]


class Composer:
    """A job's config for checking, composed once per choice of config groups (a composition takes
    ~0.3 s): plain ``key=value`` overrides are then set on a copy, as Hydra would set them."""

    def __init__(self, config_name: str, groups: set[str]):
        self.config_name, self.groups, self.cache = config_name, groups, {}

    def __call__(self, job: list[str]) -> DictConfig:
        from hydra import compose
        from hydra.core.override_parser.overrides_parser import OverridesParser
        from omegaconf import OmegaConf

        overrides = OverridesParser.create().parse_overrides(job)
        if any(o.type.name != "CHANGE" for o in overrides):  # +, ++, ~: composed whole, in Hydra's order
            return compose(config_name=self.config_name, overrides=job)
        composed, plain = [], []
        for o in overrides:
            key = o.get_key_element()
            (plain if key not in self.groups and not key.startswith("hydra") else composed).append(o)
        key = tuple(o.input_line for o in composed)
        if key not in self.cache:
            self.cache[key] = compose(config_name=self.config_name, overrides=list(key))
        cfg = self.cache[key].copy()
        for o in plain:
            node = OmegaConf.select(cfg, o.get_key_element(), default=_ABSENT)
            if node is _ABSENT or (OmegaConf.is_dict(node) and isinstance(o.value(), list)):
                # Hydra's own error for the key; or a group given as a list (logger=[tensorboard,csv]), which
                # Hydra leaves out of runtime.choices: composed whole
                return compose(config_name=self.config_name, overrides=job)
            OmegaConf.update(cfg, o.get_key_element(), o.value(), force_add=False)
        return cfg


_ABSENT = object()


def check_jobs(config: DictConfig, config_name: str, jobs: list[tuple[list[str], list[str]]], numbered: bool = True) -> list[str]:
    """One line for each job (its overrides, and the ones that tell it apart) whose settings are
    refused; empty when all are fine. ``numbered=False``: the jobs are a search's extreme values."""
    from experiments.build import check_components
    from experiments.preflight import preflight

    problems = []
    local = str(config.hydra.launcher.get("_target_", "")).endswith("BasicLauncher")  # else GPUs are checked where jobs run
    composed = Composer(config_name, set(config.hydra.runtime.choices))
    for num, (job, swept) in enumerate(jobs):
        label = f"job {num} ({' '.join(swept) or 'no swept keys'})" if numbered else f"searched {' '.join(swept)}"
        try:
            cfg = composed(job)
            preflight(cfg, local=local)
            check_components(cfg)
        except ConfigError as exc:  # the settings' own errors, one line each
            problems.append(f"{label}: {exc}")
        except Exception as exc:  # noqa: BLE001 — composition errors (unknown option or key) become the job's line
            from experiments.errors import config_error_message

            message = config_error_message(exc)
            if message is None:
                raise
            problems.append(f"{label}: {message}")
    if problems:
        what = "the sweep's jobs have" if numbered else "the searched values give"
        problems.append(f"{len(problems)} of {what} bad settings; no job was run")
    return problems


def record_failure(job_dir: Path, num: int, overrides: list[str], message: str, code: int) -> None:
    """Mark a sweep job as failed (the sweep goes on with the others and reports it at the end)."""
    from core.files import write_json_atomic

    job_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(job_dir / FAILED, {"job": num, "overrides": " ".join(overrides), "exit": code, "error": message})
    print(f"error: job {num}: {message}", file=sys.stderr, flush=True)
