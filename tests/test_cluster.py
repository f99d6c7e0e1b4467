"""Cluster launches and pre-emption: torchrun (two "nodes" over loopback), submitit (local, and the
SLURM preset's sbatch header), SIGTERM/SIGUSR1 saving the run, a requeued job continuing in place,
and checkpoints read without running pickled code."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from conftest import CONFIG_DIR, RUN, run_cli
from experiments import cluster

QUICK = ("trainer.max_epochs=2", "callbacks.progress=none", "callbacks.figures=false", "logger=none")


# ---- names and checks (no processes) ---------------------------------------------------------


def test_slurm_stamp_is_shared_by_the_steps_tasks_and_kept_by_a_requeue():
    job = {"SLURM_JOB_ID": "4711", "SLURM_JOB_NAME": "train", "SLURM_STEP_ID": "0", "SLURM_PROCID": "3"}
    stamp = cluster.slurm_stamp(job, ["seed=0"])
    assert stamp.startswith("slurm4711_0_") and len(stamp) == len("slurm4711_0_") + 8
    assert cluster.slurm_stamp({**job, "SLURM_RESTART_COUNT": "1"}, ["seed=0"]) == stamp  # requeued: same directory
    assert cluster.slurm_stamp(job, ["seed=1"]) != stamp  # another command in the same step: another directory
    assert cluster.slurm_stamp({**job, "SLURM_ARRAY_JOB_ID": "9", "SLURM_ARRAY_TASK_ID": "2"}, ["seed=0"]).startswith("slurm9_2_0_")
    assert cluster.slurm_stamp({**job, "SLURM_JOB_NAME": "bash"}) is None  # an interactive salloc shell
    assert cluster.slurm_stamp({k: v for k, v in job.items() if k != "SLURM_STEP_ID"}) is None  # python in a batch script, no srun
    assert cluster.slurm_stamp({}) is None
    assert cluster.run_stamp({"DLF_RUN_STAMP": "mine", **job}) == "mine"
    assert cluster.is_restart({"SLURM_RESTART_COUNT": "2"}) and not cluster.is_restart({"SLURM_RESTART_COUNT": "0"})
    assert cluster.launched_rank({"SLURM_PROCID": "3"}) == 3 and cluster.launched_rank({}) == 0


def test_torchrun_with_a_trainer_that_expects_fewer_processes_is_an_error():
    env = {"TORCHELASTIC_RUN_ID": "x", "WORLD_SIZE": "4", "LOCAL_WORLD_SIZE": "2"}
    single = OmegaConf.create({"devices": 1, "num_nodes": 1})
    assert cluster.launch_problem(single, env) == (
        "trainer.devices=1 trainer.num_nodes=1 trainer.strategy=auto: torchrun started 2 process(es) per node on 2 node(s); "
        "use trainer=ddp_cpu (or ddp) trainer.devices=2 trainer.num_nodes=2"
    )
    assert cluster.launch_problem(OmegaConf.create({"devices": 2, "num_nodes": 2, "strategy": "ddp"}), env) is None
    assert cluster.launch_problem(single, {}) is None


def test_the_slurm_preset_asks_for_one_task_per_device_on_every_node():
    from hydra import compose, initialize_config_dir
    from submitit.slurm.slurm import _make_sbatch_string

    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose(
            "train",
            overrides=[
                "hydra/launcher=submitit_slurm",
                "trainer=ddp",
                "trainer.devices=4",
                "trainer.num_nodes=2",
                "hydra.launcher.partition=gpu",
            ],
            return_hydra_config=True,
        )
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("submitit_launcher.SlurmLauncher")
    script = _make_sbatch_string(
        command="python run.py",
        folder="/tmp/x",
        partition=launcher.partition,
        time=launcher.timeout_min,
        nodes=launcher.nodes,
        ntasks_per_node=launcher.tasks_per_node,
        gpus_per_node=launcher.gpus_per_node,
        cpus_per_task=launcher.cpus_per_task,
        signal_delay_s=launcher.signal_delay_s,
    )
    for line in ("--nodes=2", "--ntasks-per-node=4", "--gpus-per-node=4", "--partition=gpu", "--time=240", "--signal=USR2@120"):
        assert f"#SBATCH {line}\n" in script


def test_checkpoints_are_loaded_without_running_pickled_code(tmp_path):
    from callbacks.checkpoint_io import AtomicCheckpointIO

    io = AtomicCheckpointIO()
    io.save_checkpoint({"state_dict": {"w": torch.ones(2)}, "epoch": 3}, tmp_path / "ok.ckpt")
    assert io.load_checkpoint(tmp_path / "ok.ckpt")["epoch"] == 3
    torch.save({"payload": Path("/etc/passwd")}, tmp_path / "pickled.ckpt")  # any object that needs unpickling
    with pytest.raises(Exception, match="Weights only load failed"):
        io.load_checkpoint(tmp_path / "pickled.ckpt")


# ---- real processes ----------------------------------------------------------------------------


def test_torchrun_two_nodes_over_loopback_write_one_run(tmp_path):
    torchrun = Path(sys.executable).with_name("torchrun")
    args = [*QUICK, "trainer=ddp_cpu", "trainer.devices=1", "trainer.num_nodes=2"]
    env = {k: v for k, v in os.environ.items() if k != "DLF_RUN_STAMP"}
    port = str(29400 + os.getpid() % 500)
    nodes = [
        subprocess.Popen(
            [
                str(torchrun),
                "--nnodes=2",
                f"--node_rank={rank}",
                "--nproc_per_node=1",
                "--master_addr=127.0.0.1",
                f"--master_port={port}",
                str(RUN),
                *args,
            ],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for rank in (0, 1)
    ]
    outputs = [node.communicate(timeout=240)[0] for node in nodes]
    assert [node.returncode for node in nodes] == [0, 0], outputs[0][-1500:] + outputs[1][-1500:]
    runs = list((tmp_path / "outputs" / "runs").iterdir())
    assert len(runs) == 1, runs  # both "nodes" named the same directory (rank 0's time, through torchrun's store)
    lines = [line for out in outputs for line in out.splitlines() if line.startswith("run_dir: ")]
    assert lines == [f"run_dir: {runs[0].resolve()}"]  # printed once, by global rank 0
    metrics = json.loads((runs[0] / "metrics.json").read_text())
    assert metrics["test/acc"] > 0.85 and metrics["steps"] == 2 * 10  # 1,257 training digits: 629 a rank, 10 batches of 64


def test_submitit_local_runs_a_multirun_of_two_jobs(tmp_path):
    proc = run_cli("-m", "hydra/launcher=submitit_local", "seed=0,1", *QUICK, cwd=tmp_path, timeout=240)
    assert proc.returncode == 0, proc.stderr[-2000:]
    sweeps = list((tmp_path / "outputs" / "multiruns").iterdir())
    assert len(sweeps) == 1
    jobs = sorted(p for p in sweeps[0].iterdir() if p.is_dir() and not p.name.startswith("."))
    assert [json.loads((job / "metrics.json").read_text())["seed"] for job in jobs] == [0, 1]
    assert (sweeps[0] / ".submitit").is_dir()  # submitit's own logs, per job


def _start_and_signal(tmp_path: Path, signum: int, args: list[str], env: dict | None = None) -> subprocess.CompletedProcess:
    proc = subprocess.Popen(
        [sys.executable, str(RUN), *args], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    for line in proc.stdout:  # one line per finished epoch; the signal lands in epoch 2 (most likely mid-epoch)
        if line.startswith("epoch 1/"):
            time.sleep(0.1)
            proc.send_signal(signum)
            break
    out, err = proc.communicate(timeout=120)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


# SIGTERM in the default suite; SIGINT and SIGUSR1 take the same save-and-resume path (20 s each) behind -m slow
@pytest.mark.parametrize(
    "signum",
    [signal.SIGTERM, pytest.param(signal.SIGINT, marks=pytest.mark.slow), pytest.param(signal.SIGUSR1, marks=pytest.mark.slow)],
    ids=["SIGTERM", "SIGINT (Ctrl-C)", "SIGUSR1"],
)
def test_a_preemption_signal_saves_the_run_and_resume_finishes_it(tmp_path, signum):
    args = [
        "data.batch_size=8",
        "trainer.max_epochs=4",
        "callbacks.progress=plain",
        "logger=none",
        "callbacks.figures=false",
        "hydra.run.dir=outputs/run",
    ]
    stopped = _start_and_signal(tmp_path, signum, args)
    run = tmp_path / "outputs" / "run"
    assert stopped.returncode == 4, stopped.stderr[-2000:]
    error = stopped.stderr.strip().splitlines()[-1]
    assert error.startswith(f"error: stopped by {signal.Signals(signum).name} at epoch 1, step ") and error.endswith(
        f"resume={run.resolve()}"
    )
    last = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["global_step"] >= 158 and not (run / "metrics.json").exists()  # in epoch 2 (158 steps an epoch)
    resumed = run_cli("resume=outputs/run", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["epochs"] == 4 and metrics["steps"] == 4 * 158 and metrics["test/acc"] > 0.95


def test_a_requeued_job_continues_in_its_own_directory(tmp_path):
    """What SLURM's requeue does: the same command again, with SLURM_RESTART_COUNT=1; the run
    directory's name comes from the job (here DLF_RUN_STAMP), so the rerun finds its checkpoint."""
    args = ["data.batch_size=8", "trainer.max_epochs=3", "callbacks.progress=plain", "logger=none", "callbacks.figures=false"]
    env = {**os.environ, "DLF_RUN_STAMP": "job42"}
    assert _start_and_signal(tmp_path, signal.SIGTERM, args, env).returncode == 4
    again = run_cli(*args, cwd=tmp_path, env=env)  # not a restart: the directory is taken, nothing is overwritten
    assert again.returncode == 2 and "already holds a run" in again.stderr
    requeued = run_cli(*args, cwd=tmp_path, env={**env, "SLURM_RESTART_COUNT": "1"})
    assert requeued.returncode == 0, requeued.stderr[-2000:]
    run = tmp_path / "outputs" / "runs" / "job42_mlp_digits"
    assert requeued.stdout.strip().splitlines()[-1] == f"run_dir: {run.resolve()}"
    finished = json.loads((run / "metrics.json").read_text())
    assert finished["epochs"] == 3
    again = run_cli(*args, cwd=tmp_path, env={**env, "SLURM_RESTART_COUNT": "2"})  # requeued once more after it finished
    assert again.returncode == 0 and json.loads((run / "metrics.json").read_text()) == finished  # left as it was
