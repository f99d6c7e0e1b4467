"""``study.launcher=submitit_local | submitit_slurm``: each member a submitit job.

``submitit_slurm`` submits the members as one SLURM job array (``study.workers`` at a time, or as
many as SLURM allows) with the resources of the project's SLURM preset
(``configs/hydra/launcher/submitit_slurm.yaml``; ``study.slurm.<key>`` replaces one), nodes, GPUs
and tasks per node from the members' ``trainer.num_nodes`` and ``trainer.devices``, so a member may
itself be a multi-GPU DDP run. Before its time limit or on pre-emption SLURM signals the job, which
submitit requeues; the requeued member continues from its last checkpoint. ``submitit_local`` runs the
same path as processes on this machine (``study.workers`` at a time, one GPU each with trainer=gpu).
Every submitted job is recorded in ``<study>/logs/jobs.json``, so a later ``study.resume=true``
waits for the ones still in flight instead of submitting them twice."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from pathlib import Path

import submitit
from omegaconf import DictConfig, OmegaConf

from core.errors import ConfigError
from core.files import write_json_atomic
from core.rules import fmt
from experiments.studies.launch import Slots, Unit, last_error

ROOT = Path(__file__).resolve().parents[2]
PRESET = ROOT / "experiments" / "configs" / "hydra" / "launcher" / "submitit_slurm.yaml"
#: study.slurm keys: null takes the preset's value
SLURM_KEYS = ("partition", "account", "timeout_min", "cpus_per_task", "mem_gb", "signal_delay_s", "max_num_timeout")
SLURM_RULES = {
    "partition": "a partition name (sinfo lists them) or null",
    "account": "an account name or null",
    "timeout_min": "the job's time limit, whole minutes >= 1",
    "cpus_per_task": "an integer >= 1",
    "mem_gb": "a number of gigabytes > 0, or null (the partition's default)",
    "signal_delay_s": "seconds before the time limit that SLURM signals the job, an integer >= 0",
    "max_num_timeout": "requeues after a time-out, an integer >= 0",
}
RECORD = "jobs.json"
LOCAL_TIMEOUT_MIN = 7 * 24 * 60  # submitit_local: no time limit of its own (a week), as local and inline have none


def slurm_options(s: DictConfig) -> dict:
    """The SLURM preset's resources with ``study.slurm``'s given (non-null) values over them."""
    given = dict(s.get("slurm") or {})  # its keys are train.yaml's (Hydra refuses others)
    preset = OmegaConf.load(PRESET)
    options = {k: given[k] if given.get(k) is not None else preset.get(k) for k in SLURM_KEYS}
    for key, value in options.items():
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        wrong = (
            (key in ("partition", "account") and value is not None and not isinstance(value, str))
            or (key in ("timeout_min", "cpus_per_task") and not (number and value == int(value) and value >= 1))
            or (key in ("signal_delay_s", "max_num_timeout") and not (number and value == int(value) and value >= 0))
            or (key == "mem_gb" and value is not None and not (number and value > 0))
        )
        if wrong:
            raise ConfigError(f"study.slurm.{key}={fmt(value)}: {SLURM_RULES[key]}")
    return options


def _memory(mem_gb: float | None) -> str | None:
    """sbatch's --mem: whole gigabytes, else megabytes."""
    if mem_gb is None:
        return None
    return f"{int(mem_gb)}G" if mem_gb == int(mem_gb) else f"{int(mem_gb * 1024)}M"


def check_slurm(s: DictConfig, trainer: DictConfig) -> None:
    slurm_options(s)
    devices, nodes = trainer.get("devices", 1), trainer.get("num_nodes", 1)
    for key, value in (("trainer.devices", devices), ("trainer.num_nodes", nodes)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{key}={fmt(value)}: study.launcher=submitit_slurm asks SLURM for that many per member; give a number >= 1")
    if shutil.which("sbatch") is None or shutil.which("srun") is None:
        raise ConfigError(
            "study.launcher=submitit_slurm: no sbatch and srun on this machine (SLURM is absent or not on PATH); "
            "study.launcher=submitit_local runs the same path as local processes"
        )


@contextlib.contextmanager
def _environment(threads: int | None):
    """What the jobs start with (submitit passes this process's environment on): this checkout's
    code first on the path, and the torch threads a job has (read when torch is imported)."""
    given = {"PYTHONPATH": os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
    if threads:
        given["OMP_NUM_THREADS"] = str(threads)
    before = {k: os.environ.get(k) for k in given}
    os.environ.update(given)
    try:
        yield
    finally:
        for k, v in before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _why(job, log: Path) -> str:
    """One line for a job that did not finish its member: its own error line, else submitit's."""
    said = last_error(log)
    if said and not said.startswith("submitit"):
        return said
    state = job.state
    if not job.paths.result_pickle.exists():  # killed, cancelled, timed out for good: nothing to read
        return f"its job ended without a result (state: {state})"
    try:
        job.result()
    except Exception as exc:  # noqa: BLE001 — whatever ended the job, as its last line
        lines = [line for line in str(exc).splitlines() if line.strip()]
        return lines[-1] if lines else type(exc).__name__
    return f"its job ended (state: {state})"


class Job:
    def __init__(self, unit: Unit, job, release=lambda: None, owned: bool = True):
        self.unit, self.job, self.release, self.owned = unit, job, release, owned
        self.log = Path(job.paths.stdout)

    def poll(self) -> str | None:
        if not self.job.done():
            return None
        self.release()
        return "" if self.unit.done() else _why(self.job, self.log)

    def stop(self) -> None:
        if self.owned:  # a job an earlier, detached invocation submitted goes on (a later resume finds it again)
            self.job.cancel(check=False)

    def wait_stopped(self) -> None:
        pass  # submitit's local controller passes the signal on; SLURM cancels on its own time


class Adopted:
    """A local job an earlier, detached study submitted: its controller process, not a child of this one."""

    def __init__(self, unit: Unit, pid: int, log: Path):
        self.unit, self.pid, self.log = unit, pid, log

    def poll(self) -> str | None:
        if _alive(self.pid):
            return None
        return "" if self.unit.done() else "its job ended without writing metrics.json"

    def stop(self) -> None:
        pass  # it was not started by this process: it goes on (a later resume finds it again)

    def wait_stopped(self) -> None:
        pass


def _alive(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"submitit" in cmdline


class Jobs:
    def __init__(self, launcher: str, s: DictConfig, trainer: DictConfig, workers: int, on_gpu: bool, logs: Path):
        self.launcher, self.logs = launcher, logs
        self.folder = logs / "submitit" / "%j"
        self.record = logs / RECORD
        if launcher == "submitit_local":
            self.capacity, self.poll_s = workers, 0.5
            self.slots = Slots(workers)
            self.on_gpu = on_gpu
            if on_gpu and not all(d.isdigit() for d in self.slots.visible):
                raise ConfigError(
                    f"study.launcher=submitit_local: CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')} names GPUs "
                    "by UUID; submitit gives its jobs GPUs by index (study.launcher=local takes either)"
                )
            self.executor = submitit.LocalExecutor(folder=self.folder)
            self.executor.update_parameters(
                timeout_min=LOCAL_TIMEOUT_MIN, tasks_per_node=1, gpus_per_node=int(on_gpu), stderr_to_stdout=True
            )
            self.threads = self.slots.threads
        else:
            options = slurm_options(s)
            devices, nodes = int(trainer.get("devices", 1)), int(trainer.get("num_nodes", 1))
            self.capacity, self.poll_s, self.slots = 0, 5.0, None  # one array: SLURM starts study.workers at a time
            self.executor = submitit.SlurmExecutor(folder=self.folder, max_num_timeout=options["max_num_timeout"])
            self.executor.update_parameters(
                job_name=f"dlf-{s.get('name', 'study')}",
                partition=options["partition"],
                account=options["account"],
                time=options["timeout_min"],
                nodes=nodes,
                ntasks_per_node=devices,  # one process per GPU: Lightning reads the ranks from SLURM
                gpus_per_node=devices if on_gpu else None,
                cpus_per_task=options["cpus_per_task"],
                mem=_memory(options["mem_gb"]),
                signal_delay_s=options["signal_delay_s"],
                array_parallelism=workers or 256,
                stderr_to_stdout=True,
                additional_parameters={"requeue": True},  # SLURM may requeue a member pre-empted or on a failed node
            )
            self.threads = options["cpus_per_task"]

    def close(self) -> None:
        pass  # each job is its own process

    def _jobs(self) -> dict:
        return json.loads(self.record.read_text()) if self.record.is_file() else {}

    def adopt(self, units: list[Unit]) -> list:
        """The members whose recorded job still runs: waited for, not submitted again."""
        recorded, found = self._jobs(), []
        for unit in units:
            entry = recorded.get(unit.label)
            if not entry or entry["launcher"] != self.launcher:
                continue
            if self.launcher == "submitit_local":
                if _alive(int(entry["job_id"])):
                    found.append(Adopted(unit, int(entry["job_id"]), Path(entry["log"])))
            else:
                job = submitit.SlurmJob(folder=self.folder, job_id=entry["job_id"])
                if not job.done():
                    found.append(Job(unit, job, owned=False))
        return found

    def start(self, units: list[Unit]) -> list[Job]:
        if not units:
            return []
        with _environment(self.threads):
            if self.slots is None:  # SLURM: one array
                with self.executor.batch():
                    jobs = [self.executor.submit(self._call(unit)) for unit in units]
                handles = [Job(unit, job) for unit, job in zip(units, jobs)]
            else:
                handles = []
                for unit in units:
                    slot = self.slots.take()
                    if self.on_gpu:
                        self.executor.update_parameters(visible_gpus=[int(self.slots.gpu(slot))])
                    job = self.executor.submit(self._call(unit))
                    handles.append(Job(unit, job, lambda slot=slot: self.slots.give(slot)))
        recorded = self._jobs()
        for handle in handles:
            recorded[handle.unit.label] = {"launcher": self.launcher, "job_id": str(handle.job.job_id), "log": str(handle.log)}
        write_json_atomic(self.record, recorded)
        return handles

    def _call(self, unit: Unit) -> "MemberJob":
        return MemberJob(str(unit.member_dir), list(unit.overrides), self.launcher, self.threads)


class MemberFailed(RuntimeError):
    """A member's run ended with an error (its line, ``error: ...``, is in the job's log)."""


class MemberJob(submitit.helpers.Checkpointable):
    """What a job runs: one member. On SLURM's signal (time limit, pre-emption) submitit requeues
    this same call, which continues the member from its last checkpoint."""

    def __init__(self, member_dir: str, overrides: list[str], launcher: str, threads: int | None):
        self.member_dir, self.overrides, self.launcher, self.threads = member_dir, overrides, launcher, threads

    def __call__(self) -> None:
        from experiments.studies.member import main

        env = submitit.JobEnvironment()
        os.environ.update(DLF_LAUNCHER=self.launcher, DLF_JOB_ID=str(env.job_id))
        if self.threads:
            os.environ["DLF_MEMBER_THREADS"] = str(self.threads)
        code = main([self.member_dir, *self.overrides], primary=env.global_rank == 0)
        if code:
            raise MemberFailed(f"exit status {code}")
