"""Hydra callbacks (configs/train.yaml ``hydra.callbacks``): directories are claimed before Hydra
writes into them, and a sweep is checked whole before its first job starts.

Hydra creates the run directory and saves ``.hydra/`` into it before the task function runs, so a
check inside the task comes too late: a refused run would already have overwritten another run's
saved config. ``on_run_start`` runs before that (``experiments/rundir.py`` says how a claim works).

Hydra turns an Exception raised in a callback into a warning, so refusals here raise ``ConfigExit``
(a SystemExit), which ends the process with one line.
"""
from __future__ import annotations

import itertools
import json
import os
import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, read_write

from experiments import cluster, rundir
from experiments.errors import ConfigExit

SWEEP_DIR_ENV = "DLF_SWEEP_DIR"  # read by hydra.sweep.dir in configs/train.yaml
FAILED = rundir.FAILED


def _overridden(config: DictConfig, key: str) -> bool:
    return any(o.split("=", 1)[0].lstrip("+~") == key for o in config.hydra.overrides.hydra)


def _check_name(config: DictConfig) -> None:
    """``name`` becomes part of the directory's path: refused before anything is created."""
    from experiments.preflight import check_name
    from experiments.validation import ConfigError

    try:
        check_name(config.name)
    except ConfigError as exc:
        raise ConfigExit(str(exc)) from exc


class RunDirectories(Callback):
    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        if cluster.is_secondary() or cluster.is_restart():
            return  # joins (or continues in) the directory its first process claimed
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
        try:
            path = rundir.claim(config.hydra.sweep.dir, "hydra.sweep.dir", unique=not explicit, marker=rundir.SWEEP_CLAIM)
        except rundir.ClaimError as exc:
            raise ConfigExit(str(exc)) from exc
        path = path.resolve()
        with read_write(config.hydra.sweep):
            config.hydra.sweep.dir = str(path)
        os.environ[SWEEP_DIR_ENV] = str(path)  # DDP's extra processes of each job join this folder
        if str(config.hydra.sweeper.get("_target_", "")).endswith("BasicSweeper"):
            problems = check_jobs(config, config_name or "train")
            if problems:
                rundir.release(path)
                raise ConfigExit("\n".join(problems), code=2)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if cluster.is_secondary():
            return
        from experiments import summary

        sweep = Path(config.hydra.sweep.dir)
        runs = summary.find_runs([sweep])
        if runs:  # summary.csv (a row per job, failed ones too) and summary.md (seeds pooled, by validation)
            summary.write(summary.rows(runs), sweep, f"Sweep {sweep.name}")
        failed = sorted((json.loads(p.read_text()) for p in sweep.glob(f"*/{FAILED}")), key=lambda r: r["job"])
        if failed:
            jobs = ", ".join(f"job {r['job']} (exit {r['exit']})" for r in failed)
            raise ConfigExit(f"{len(failed)} job(s) of the sweep failed, the others finished: {jobs}; each failed job's "
                             f"{FAILED} says why; sweep: {sweep}",
                             code=max(r["exit"] for r in failed))


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


def check_jobs(config: DictConfig, config_name: str) -> list[str]:
    """One line for each job of the sweep whose settings are refused (empty when all are fine)."""
    from hydra import compose

    from experiments.build import check_components
    from experiments.preflight import preflight

    problems = []
    local = str(config.hydra.launcher.get("_target_", "")).endswith("BasicLauncher")  # else GPUs are checked where jobs run
    for num, (job, swept) in enumerate(sweep_jobs(list(config.hydra.overrides.task))):
        label = f"job {num} ({' '.join(swept) or 'no swept keys'})"
        try:
            cfg = compose(config_name=config_name, overrides=job)
            preflight(cfg, local=local)
            check_components(cfg)
        except (ValueError, TypeError) as exc:  # ConfigError and the registries' errors: one line each
            problems.append(f"{label}: {exc}")
        except Exception as exc:  # noqa: BLE001 — composition errors (unknown option or key) become the job's line
            from experiments.errors import config_error_message

            message = config_error_message(exc)
            if message is None:
                raise
            problems.append(f"{label}: {message}")
    if problems:
        problems.append(f"{len(problems)} of the sweep's jobs have bad settings; no job was run")
    return problems


def record_failure(job_dir: Path, num: int, overrides: list[str], message: str, code: int) -> None:
    """Mark a sweep job as failed (the sweep goes on with the others and reports it at the end)."""
    from experiments.results import write_json_atomic

    job_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(job_dir / FAILED, {"job": num, "overrides": " ".join(overrides), "exit": code, "error": message})
    print(f"error: job {num}: {message}", file=sys.stderr, flush=True)
