"""Where a run launched by a cluster tool writes, so that every process of it agrees.

``python experiments/run.py`` names its run directory after the time it starts. Lightning's own
DDP launcher hands its children the parent's directory, but processes started by someone else
(``torchrun``, ``srun``) each start their own clock: without help, a two-node job would write
two directories. ``run_stamp()`` replaces the time with a name all of them share:

* ``DLF_RUN_STAMP`` when the user (or a launcher) sets it;
* in a SLURM ``srun`` step: ``slurm<job id>[_<array task>]_<step>_<hash of the arguments>``, which
  is also the same after SLURM requeues the job, so a requeued run finds its checkpoints and continues;
* under ``torchrun`` with several processes: the first process's start time, passed to the others
  through torchrun's own rendezvous store (the one ``init_process_group`` connects to).
"""

from __future__ import annotations

import hashlib
import os
import time
from datetime import timedelta

STAMP_ENV = "DLF_RUN_STAMP"  # read by hydra.run.dir in configs/train.yaml
_STORE_KEY = "dl_foundations/run_stamp"


def _now() -> str:
    return time.strftime("%Y-%m-%d_%H-%M-%S")


def slurm_stamp(env: os._Environ | dict, argv: list[str] | None = None) -> str | None:
    """A name for one command of an ``srun`` step that all its tasks share and a requeue keeps:
    the job, the step and a hash of the command's arguments (two commands in one step never share
    a directory). None outside an srun step: a plain ``python`` line in a batch script or an
    interactive ``salloc`` shell runs ordinary, time-stamped runs."""
    if "SLURM_JOB_ID" not in env or "SLURM_STEP_ID" not in env or env.get("SLURM_JOB_NAME") in ("bash", "interactive"):
        return None
    job = f"{env['SLURM_ARRAY_JOB_ID']}_{env['SLURM_ARRAY_TASK_ID']}" if "SLURM_ARRAY_JOB_ID" in env else env["SLURM_JOB_ID"]
    digest = hashlib.sha1("\0".join(argv or []).encode()).hexdigest()[:8]
    return f"slurm{job}_{env['SLURM_STEP_ID']}_{digest}"


def torchrun_stamp(env: os._Environ | dict) -> str | None:
    """Rank 0's start time, shared through torchrun's rendezvous store; None outside torchrun or
    with a single process."""
    if "TORCHELASTIC_RUN_ID" not in env or int(env.get("WORLD_SIZE", "1")) < 2:
        return None
    from torch.distributed import TCPStore

    store = TCPStore(env["MASTER_ADDR"], int(env["MASTER_PORT"]), is_master=False, timeout=timedelta(seconds=120))
    # the first process to ask sets it, every later one (and every process after a torchrun
    # restart: the store outlives the workers) reads the same value
    return store.compare_set(_STORE_KEY, "", _now()).decode()


def run_stamp(env: os._Environ | dict = os.environ, argv: list[str] | None = None) -> str | None:
    return env.get(STAMP_ENV) or slurm_stamp(env, argv) or torchrun_stamp(env)


def is_restart(env: os._Environ | dict = os.environ) -> bool:
    """True when SLURM requeued this job or torchrun restarted its workers: the run directory
    then already holds this run's checkpoints, and the run continues from them."""
    return int(env.get("SLURM_RESTART_COUNT", "0") or 0) > 0 or int(env.get("TORCHELASTIC_RESTART_COUNT", "0") or 0) > 0


def launched_rank(env: os._Environ | dict = os.environ) -> int:
    """The global rank a cluster tool gave this process (0 when none did)."""
    for key in ("RANK", "SLURM_PROCID"):
        if key in env:
            return int(env[key])
    return 0


def is_secondary(env: os._Environ | dict = os.environ) -> bool:
    """True in a process that joins a run another process of the same job started (and so claims
    no directory): Lightning's DDP children (LOCAL_RANK >= 1), torchrun and srun ranks >= 1, and
    the first process of every node but the first."""
    ranks = (env.get(key, "0") or "0" for key in ("LOCAL_RANK", "NODE_RANK", "GROUP_RANK"))
    return launched_rank(env) != 0 or any(r.strip() not in ("0", "") for r in ranks)


def launch_problem(trainer_cfg, env: os._Environ | dict = os.environ) -> str | None:
    """What is wrong when ``torchrun`` started more processes than the trainer config expects
    (each would otherwise train alone, and only one would log); None when they agree."""
    if "TORCHELASTIC_RUN_ID" not in env:
        return None
    world, per_node = int(env.get("WORLD_SIZE", "1")), int(env.get("LOCAL_WORLD_SIZE", "1"))
    nodes = world // max(per_node, 1)
    devices, num_nodes = trainer_cfg.get("devices", 1), trainer_cfg.get("num_nodes", 1)
    strategy = str(trainer_cfg.get("strategy", "auto"))
    if world == 1 or (devices in (-1, "auto") and strategy != "auto"):
        return None
    if strategy == "auto" or devices != per_node or num_nodes != nodes:
        return (
            f"trainer.devices={devices} trainer.num_nodes={num_nodes} trainer.strategy={strategy}: torchrun started "
            f"{per_node} process(es) per node on {nodes} node(s); use trainer=ddp_cpu (or ddp) "
            f"trainer.devices={per_node} trainer.num_nodes={nodes}"
        )
    return None
