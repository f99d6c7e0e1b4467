"""Where a study's member runs train: ``study.launcher``.

- ``inline`` (default): one after another in the study's own process.
- ``local``: up to ``study.workers`` members at once, each in a process of its own
  (``python -m experiments.studies.member``); the machine's cores are divided between the workers
  (torch's threads per worker), and with ``trainer=gpu`` each worker sees one GPU of its own
  (``CUDA_VISIBLE_DEVICES``). A member that fails does not stop the others: the study names it
  (member, its error's last line, its log) and exits non-zero without a report; ``study.resume=true``
  reruns just what is missing.

Either way a member is the same run (the same overrides, composed the same way), so the study's
tables do not depend on the launcher.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from omegaconf import DictConfig

from core.errors import ConfigError
from experiments.train import TrainingFailed

LAUNCHERS = ("inline", "local")
#: the studies whose units are not member runs yet, and so train in the study's process
INLINE_ONLY = {
    "optimizers": "trains its optimizers on the test surfaces and its members in the study's process",
    "bagging": "trains its ensembles as one vectorized model in the study's process",
    "bias_variance": "trains its ensembles as one vectorized model in the study's process",
}


@dataclass(frozen=True)
class Unit:
    """One member run: its directory and the overrides that compose its config."""

    label: str
    member_dir: Path
    overrides: tuple[str, ...]

    def done(self) -> bool:
        return (self.member_dir / "metrics.json").exists()


class MembersFailed(TrainingFailed):
    """Some members failed under a parallel launcher; the others finished and are kept (exit 3)."""


def _gpus() -> int:
    import torch

    return torch.cuda.device_count()


def workers_of(s: DictConfig, trainer: DictConfig) -> int:
    """``study.workers`` checked: null means one per visible GPU with a GPU trainer, else one."""
    launcher, workers = s.get("launcher", "inline"), s.get("workers")
    if launcher not in LAUNCHERS:
        raise ConfigError(f"study.launcher={launcher!r}: unknown; valid: {', '.join(LAUNCHERS)}")
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise ConfigError(f"study.workers={workers}: must be an integer >= 1 or null (one per GPU with trainer=gpu, else 1)")
    on_gpu = str(trainer.get("accelerator", "cpu")) in ("gpu", "cuda")
    if launcher == "inline":
        if workers not in (None, 1):
            raise ConfigError(f"study.workers={workers}: the inline launcher runs one member at a time; add study.launcher=local")
        return 1
    strategy, devices, nodes = str(trainer.get("strategy", "auto")), trainer.get("devices", 1), trainer.get("num_nodes", 1)
    if strategy.startswith(("ddp", "fsdp", "deepspeed")) or devices != 1 or nodes != 1:
        raise ConfigError(
            f"study.launcher=local with trainer.strategy={strategy} trainer.devices={devices} trainer.num_nodes={nodes}: each "
            "local worker trains one member in one process on one device; use trainer=cpu or trainer=gpu"
        )
    gpus = _gpus() if on_gpu else 0
    if on_gpu and gpus == 0:
        raise ConfigError("study.launcher=local with trainer.accelerator=gpu: no CUDA GPU is visible; use trainer=cpu")
    if on_gpu and workers is not None and workers > gpus:
        raise ConfigError(f"study.workers={workers}: more workers than the {gpus} visible GPU(s) with trainer.accelerator=gpu")
    return workers or max(gpus, 1)


def _die_with_parent() -> None:
    """In the worker, before it runs: the kernel sends it SIGTERM if the study process dies (even by
    SIGKILL), so no orphan goes on training a member a later resume would start again."""
    import ctypes
    import signal

    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:  # not Linux: the per-member lock still keeps a resume from training beside it
        pass


def run_units(s: DictConfig, units: list[Unit], logs: Path, finished: Callable[[Unit, bool], None]) -> None:
    """Train every unit not finished yet, where ``study.launcher`` says; ``finished(unit, ran)`` is
    called for each unit, first those finished earlier (``ran=False``), then each as it finishes."""
    from hydra import compose

    todo = list({u.member_dir: u for u in units if not u.done()}.values())  # the same member twice (seeds [0, 0]) runs once
    for unit in units:
        if unit not in todo:
            finished(unit, False)
    if not todo:
        return
    trainer = compose(config_name="train", overrides=list(todo[0].overrides)).trainer  # the members' own
    workers = workers_of(s, trainer)
    if s.get("launcher", "inline") == "inline":
        from experiments.studies.common import run_member

        for unit in todo:
            run_member(unit.member_dir, list(unit.overrides))
            finished(unit, True)
        return
    _run_local(todo, workers, str(trainer.get("accelerator", "cpu")) in ("gpu", "cuda"), logs, finished)


def _run_local(todo: list[Unit], workers: int, on_gpu: bool, logs: Path, finished: Callable[[Unit, bool], None]) -> None:
    from experiments.studies.common import log

    logs.mkdir(parents=True, exist_ok=True)
    threads = max(1, len(os.sched_getaffinity(0)) // workers)  # the cores this process may use (SLURM, taskset), shared out
    visible = [d for d in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
    root = str(Path(__file__).resolve().parents[2])  # the workers run this checkout's code, whatever is installed
    free = list(range(workers))  # worker slots: slot i gets GPU i
    running: dict[subprocess.Popen, tuple[Unit, int, Path]] = {}
    failed: list[tuple[Unit, str, Path]] = []
    queue = list(todo)
    try:
        while queue or running:
            while queue and free:
                unit, slot = queue.pop(0), free.pop(0)
                env = {**os.environ, "OMP_NUM_THREADS": str(threads), "DLF_MEMBER_THREADS": str(threads), "DLF_LAUNCHER": "local"}
                env["PYTHONPATH"] = os.pathsep.join([root, *filter(None, [os.environ.get("PYTHONPATH")])])
                if on_gpu:  # slot i: the i-th GPU this process sees
                    env["CUDA_VISIBLE_DEVICES"] = visible[slot] if slot < len(visible) else str(slot)
                path = logs / f"{unit.label.replace('/', '_')}.log"
                with open(path, "w") as out:
                    proc = subprocess.Popen(
                        [sys.executable, "-m", "experiments.studies.member", str(unit.member_dir), *unit.overrides],
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        env=env,
                        cwd=os.getcwd(),
                        preexec_fn=_die_with_parent,
                    )
                    running[proc] = (unit, slot, path)
            time.sleep(0.2)
            for proc in [p for p in running if p.poll() is not None]:
                unit, slot, path = running.pop(proc)
                free.append(slot)
                if proc.returncode == 0 and unit.done():
                    finished(unit, True)
                else:
                    lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
                    last = f"killed by signal {-proc.returncode}" if proc.returncode < 0 else (lines[-1] if lines else "")
                    failed.append((unit, last or f"exit status {proc.returncode}", path))
                    log.info(f"{unit.label}: failed, exit status {proc.returncode}; its log: {path}")
    finally:
        for proc in running:  # the study itself was stopped: its workers stop too (their members resume later)
            proc.terminate()
        for proc in running:
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    if failed:
        named = "; ".join(f"{unit.label}: {last} (log: {path})" for unit, last, path in failed)
        raise MembersFailed(
            f"{len(failed)} of {len(todo)} member run(s) failed, the others are kept: {named}; rerun them with study.resume=true"
        )
