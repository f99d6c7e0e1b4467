"""Where a study's member runs train: ``study.launcher``.

- ``inline`` (default): one after another in the study's own process.
- ``local``: up to ``study.workers`` members at once, each in a process of its own
  (``python -m experiments.studies.member``, ``workers.py``).
- ``submitit_local`` / ``submitit_slurm``: each member a submitit job (``jobs.py``): on this machine
  (the SLURM path, run locally), or a SLURM job array with the resources of the project's SLURM preset.

Either way a member is the same run (the same overrides, composed the same way), so the study's
tables do not depend on the launcher. A member that fails does not stop the others: the study names
it (member, its error's last line, its log) and exits non-zero without a report; ``study.resume=true``
reruns what is missing and continues a member stopped mid-training from its last checkpoint. The
exception: a search's candidate (``Unit.may_diverge``, e.g. an lr the optimizer study tries) whose
loss stops being finite is finished, as the worst candidate (``diverged.json``), not a failure.
"""

from __future__ import annotations

import logging
import os
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol

from omegaconf import DictConfig

from core.errors import ConfigError
from core.rules import fmt
from experiments.train import Diverged, TrainingFailed

log = logging.getLogger("dl_foundations")

LAUNCHERS = ("inline", "local", "submitit_local", "submitit_slurm")
#: the keys every study has (train.yaml's ``study``), handed on to a study's inner stages
KEYS = ("name", "launcher", "workers", "detach", "slurm", "one_fit")
#: the studies whose units are not member runs yet, and so train in the study's process
INLINE_ONLY = {
    "bagging": "trains its ensembles as seeded fits in the study's process",
    "bias_variance": "trains its ensembles as seeded fits in the study's process",
    "double_descent": "trains each width's seeds as one seeded fit in the study's process",
    "gradient_flow": "trains each configuration's seeds as one seeded fit in the study's process",
}


@dataclass(frozen=True)
class Unit:
    """One member run: its directory and the overrides that compose its config."""

    label: str
    member_dir: Path
    overrides: tuple[str, ...]
    may_diverge: bool = False  # a candidate of a search: a loss that stopped being finite ends it, not the study

    def done(self) -> bool:
        return (self.member_dir / "metrics.json").exists() or self.diverged()

    def diverged(self) -> bool:
        """Its loss stopped being finite (``diverged.json``) and it may: it is finished, as the worst candidate."""
        from experiments.studies.common import DIVERGED

        return self.may_diverge and (self.member_dir / DIVERGED).is_file() and not (self.member_dir / "metrics.json").exists()

    @property
    def log_name(self) -> str:
        return self.label.replace("/", "_")


class MembersFailed(TrainingFailed):
    """Some members failed under a parallel launcher; the others finished and are kept (exit 3)."""


class Detached(Exception):
    """``study.detach=true``: the members were submitted and the study process ends (exit 0); the
    message says how to aggregate them later."""


class Handle(Protocol):
    """A member in flight: a worker process or a submitit job."""

    unit: Unit
    log: Path

    def poll(self) -> str | None:
        """None while it runs; "" when it ended well; else why it failed (one line)."""

    def stop(self) -> None:
        """Ask it to stop (its member resumes later from its last checkpoint)."""

    def wait_stopped(self) -> None: ...


class Backend(Protocol):
    capacity: int  # members in flight at once
    poll_s: float

    def adopt(self, units: list[Unit]) -> list[Handle]:
        """The members of ``units`` an earlier, detached invocation submitted and that still run."""

    def start(self, units: list[Unit]) -> list[Handle]: ...

    def close(self) -> None:
        """Nothing more to start: idle workers end."""


def last_error(log: Path) -> str:
    """What a member's log says went wrong: its last ``error: ...`` line, else its last line."""
    lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()] if log.is_file() else []
    errors = [line[len("error: ") :] for line in lines if line.startswith("error: ")]
    return errors[-1] if errors else lines[-1] if lines else ""


def check_kept(unit: Unit) -> None:
    """A finished member kept by ``study.resume`` must be the run the study's command makes now: one
    made with other overrides (``study.epochs``, the recipe, ...) would mix two studies in one table."""
    import json

    from experiments.studies.common import MEMBER

    record = unit.member_dir / MEMBER  # written by common._train_member; older studies have none
    if not (unit.done() and record.is_file()):
        return
    started = json.loads(record.read_text())
    if sorted(started) != sorted(unit.overrides):  # Hydra composes the same config whatever the overrides' order
        changed = sorted(set(unit.overrides) ^ set(started))
        raise ConfigError(
            f"study.resume: member {unit.label} finished with other settings than this command's ({' '.join(changed)}); "
            "resume with the command the study was started with, or start a new study"
        )


def launch_keys(s: DictConfig) -> dict:
    """The launch settings of a study, for a config of one of its stages."""
    return {k: s.get(k) for k in KEYS}


def _gpus() -> int:
    import torch

    return torch.cuda.device_count()


def workers_of(s: DictConfig, trainer: DictConfig) -> int:
    """``study.launcher``, ``study.workers`` and ``study.detach`` checked against the members'
    trainer; the members in flight at once (0: no limit, for a SLURM array without study.workers)."""
    launcher, workers, detach = s.get("launcher", "inline"), s.get("workers"), s.get("detach", False)
    if launcher not in LAUNCHERS:
        raise ConfigError(f"study.launcher={launcher!r}: unknown; valid: {', '.join(LAUNCHERS)}")
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise ConfigError(f"study.workers={workers}: must be an integer >= 1 or null (one per GPU with trainer=gpu, else 1)")
    if not isinstance(detach, bool):
        raise ConfigError(f"study.detach={detach}: must be true or false")
    if not isinstance(s.get("one_fit", True), bool):
        raise ConfigError(f"study.one_fit={s.get('one_fit')}: must be true (a member's seeds in one fit) or false (one run per seed)")
    if detach and launcher in ("inline", "local"):
        raise ConfigError(
            f"study.detach=true: the {launcher} launcher trains in the study's process or its children, which end with it; "
            "use study.launcher=submitit_slurm (or submitit_local)"
        )
    if detach and launcher == "submitit_local" and workers is not None:
        raise ConfigError(
            f"study.detach=true with study.workers={workers}: a detached study starts every member on this machine at once "
            "(no process stays to start the rest as others finish); drop study.workers"
        )
    slurm = {k: v for k, v in (s.get("slurm") or {}).items() if v is not None}
    if slurm and launcher != "submitit_slurm":
        key, value = next(iter(slurm.items()))
        raise ConfigError(f"study.slurm.{key}={fmt(value)}: SLURM resources of study.launcher=submitit_slurm, not {launcher}")
    on_gpu = str(trainer.get("accelerator", "cpu")) in ("gpu", "cuda")
    if launcher == "inline":
        if workers not in (None, 1):
            raise ConfigError(f"study.workers={workers}: the inline launcher runs one member at a time; add study.launcher=local")
        return 1
    strategy, devices, nodes = str(trainer.get("strategy", "auto")), trainer.get("devices", 1), trainer.get("num_nodes", 1)
    if launcher == "submitit_slurm":
        from experiments.studies.jobs import check_slurm

        check_slurm(s, trainer)
        return workers or 0
    if strategy.startswith(("ddp", "fsdp", "deepspeed")) or devices != 1 or nodes != 1:
        raise ConfigError(
            f"study.launcher={launcher} with trainer.strategy={strategy} trainer.devices={fmt(devices)} trainer.num_nodes={fmt(nodes)}: "
            "each member trains in one process on one device here; use trainer=cpu or trainer=gpu (or submitit_slurm for "
            "multi-GPU members)"
        )
    gpus = _gpus() if on_gpu else 0
    if on_gpu and gpus == 0:
        raise ConfigError(f"study.launcher={launcher} with trainer.accelerator=gpu: no CUDA GPU is visible; use trainer=cpu")
    if on_gpu and workers is not None and workers > gpus:
        raise ConfigError(f"study.workers={workers}: more workers than the {gpus} visible GPU(s) with trainer.accelerator=gpu")
    return workers or max(gpus, 1)


def check_launch(s: DictConfig, trainer: DictConfig, study: str) -> None:
    """Before a study starts: its launch keys, and whether this study can leave its process."""
    workers_of(s, trainer)
    launcher = s.get("launcher", "inline")
    if launcher != "inline" and study in INLINE_ONLY:
        raise ConfigError(f"study.launcher={launcher}: study={study} {INLINE_ONLY[study]}; use study.launcher=inline")


class Slots:
    """Worker slots on this machine; slot i has the i-th GPU the study process sees."""

    def __init__(self, workers: int):
        self.free = list(range(workers))
        self.visible = [d.strip() for d in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
        self.threads = max(1, len(os.sched_getaffinity(0)) // workers)  # the cores this process may use (SLURM, taskset), shared out

    def take(self) -> int:
        return self.free.pop(0)

    def give(self, slot: int) -> None:
        self.free.append(slot)

    def gpu(self, slot: int) -> str:
        """Slot i's GPU (round the GPUs when a detached study has more members than GPUs)."""
        return self.visible[slot % len(self.visible)] if self.visible else str(slot % max(1, _gpus()))


def run_units(s: DictConfig, units: list[Unit], logs: Path, finished: Callable[[Unit, bool], None]) -> None:
    """Train every unit not finished yet, where ``study.launcher`` says; ``finished(unit, ran)`` is
    called for each unit, first those finished earlier (``ran=False``), then each as it finishes."""
    from hydra import compose

    todo = list({u.member_dir: u for u in units if not u.done()}.values())  # the same member twice (seeds [0, 0]) runs once
    for unit in units:
        check_kept(unit)
    for unit in units:
        if unit not in todo:
            finished(unit, False)
    if not todo:
        return
    trainer = compose(config_name="train", overrides=list(todo[0].overrides)).trainer  # the members' own
    workers = workers_of(s, trainer)
    launcher = s.get("launcher", "inline")
    if launcher == "inline":
        from experiments.studies.common import run_member

        for unit in todo:
            try:
                run_member(unit.member_dir, list(unit.overrides))
            except Diverged:
                if not unit.diverged():
                    raise
                log.info(f"{unit.label}: diverged, kept as the worst candidate")
            finished(unit, True)
        return
    logs.mkdir(parents=True, exist_ok=True)
    on_gpu = str(trainer.get("accelerator", "cpu")) in ("gpu", "cuda")
    if s.get("detach", False) and launcher == "submitit_local":
        workers = len(todo)  # every member at once: no process stays to start the rest
    if launcher == "local":
        from experiments.studies.workers import Workers

        backend: Backend = Workers(workers, on_gpu, logs)
    else:
        from experiments.studies.jobs import Jobs

        backend = Jobs(launcher, s, trainer, workers, on_gpu, logs)
    if s.get("detach", False):
        detach(backend, todo, launcher, logs.parent)
    drive(backend, todo, finished)


def detach(backend: Backend, todo: list[Unit], launcher: str, study_dir: Path) -> None:
    """Submit every member not in flight yet and end the study process (``Detached``)."""
    from hydra.core.hydra_config import HydraConfig

    adopted = backend.adopt(todo)
    rest = [u for u in todo if u not in {h.unit for h in adopted}]
    backend.start(rest)
    given = [o for o in HydraConfig.get().overrides.task if not o.startswith(("study.detach=", "study.resume="))]
    again = shlex.join(["python", "experiments/run.py", *given, f"study.resume={study_dir}"])
    raise Detached(
        f"submitted {len(rest)} member job(s) ({launcher}){f', {len(adopted)} still in flight' if adopted else ''}; "
        f"when they have finished, aggregate (and resubmit what failed) with: {again}"
    )


def drive(backend: Backend, todo: list[Unit], finished: Callable[[Unit, bool], None]) -> None:
    """Keep ``backend.capacity`` members in flight until all have ended; report each as it ends."""
    running = backend.adopt(todo)
    queue = [u for u in todo if u not in {h.unit for h in running}]
    failed: list[tuple[Unit, str, Path]] = []
    done = 0
    progress = Progress(len(todo))
    try:
        while queue or running:
            room = backend.capacity - len(running) if backend.capacity else len(queue)  # 0: no limit (a SLURM array's own)
            if queue and room > 0:
                running += backend.start(queue[:room])
                del queue[:room]
            progress.show(done, len(running), len(failed))
            time.sleep(backend.poll_s)
            for handle in list(running):
                why = handle.poll()
                if why is None:
                    continue
                running.remove(handle)
                if (not why and handle.unit.done()) or handle.unit.diverged():
                    done += 1
                    finished(handle.unit, True)
                else:
                    failed.append((handle.unit, why or "ended without writing metrics.json", handle.log))
                    log.info(f"{handle.unit.label}: failed: {failed[-1][1]} (log: {handle.log})")
        progress.show(done, 0, len(failed))
    finally:
        progress.close()
        for handle in running:  # the study itself was stopped: its members stop too (they resume later)
            handle.stop()
        for handle in running:
            handle.wait_stopped()
        backend.close()  # the idle workers
    if failed:
        named = "; ".join(f"{unit.label}: {why} (log: {path})" for unit, why, path in failed)
        raise MembersFailed(
            f"{len(failed)} of {len(todo)} member run(s) failed, the others are kept: {named}; rerun them with study.resume=true"
        )


class Progress:
    """Members done / running / failed: a bar on a terminal, else one line each time it changes."""

    def __init__(self, total: int):
        self.total, self.last = total, None
        self.bar = None
        if sys.stderr.isatty():
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self.bar = Progress(
                TextColumn("members"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                console=Console(stderr=True),
            )  # fmt: skip
            self.task = self.bar.add_task("", total=total)
            self.bar.start()

    def show(self, done: int, running: int, failed: int) -> None:
        if (done, running, failed) == self.last:
            return
        self.last = (done, running, failed)
        if self.bar is not None:
            self.bar.update(self.task, completed=done + failed, description=f"{running} running, {failed} failed")
        else:
            log.info(f"members: {done}/{self.total} done, {running} running, {failed} failed")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
