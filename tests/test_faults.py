"""Fault injection, as a demanding user would cause it: crafted data files, runs started together,
refused runs aimed at finished ones, kills and Ctrl-C, a full disk, bad sweeps and bad settings.
Each case asserts the exit status, the one line, and the state on disk afterwards.

Most cases run the real command line inside this process (the ``cli`` fixture: the imports are paid
once); the ones about signals and concurrent processes start real processes."""

from __future__ import annotations

import csv
import json
import multiprocessing
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import RUN, error_lines, run_dirs
from lightning_modules.optimizers import OPTIMIZERS

TINY = ("trainer.max_epochs=1", "callbacks.progress=none", "callbacks.figures=false", "logger=none")


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def one_error(code: int, err: str, expected_code: int, prefix: str) -> str:
    lines = error_lines(err)
    assert code == expected_code and len(lines) == 1 and lines[0].startswith(prefix), (code, err[-3000:])
    assert "Traceback" not in err
    return lines[0]


# ---------------------------------------------------------------- 1. a data file never runs code
class Payload:
    """Unpickling this calls os.system, which would create the marker file."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_crafted_cifar_batch_is_refused_and_its_payload_never_runs(cli, tmp_path):
    root, marker = tmp_path / "cifar", tmp_path / "PAYLOAD_RAN"
    root.mkdir()
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        (root / name).write_bytes(pickle.dumps({b"data": Payload(marker), b"labels": [0]}, protocol=2))
    code, _, err = cli("data=cifar10", f"data.root={root}", *TINY)
    line = one_error(code, err, 2, f"error: {root / 'data_batch_1'}: refused: it asks to load posix.system")
    assert "nothing in the file was run" in line
    assert not marker.exists() and run_dirs(tmp_path) == []


def test_cifar_batches_written_by_numpy_1_and_2_still_load(tmp_path):
    """The allowed globals cover both numpy module layouts of real CIFAR files (protocol 2)."""
    from datamodules.files import cifar10

    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {
            b"data": rng.integers(0, 256, (4, 3072), dtype=np.uint8),
            b"labels": [0, 1, 2, 3],
            b"batch_label": b"x",
            b"filenames": [b"a", b"b", b"c", b"d"],
        }
        raw = pickle.dumps(batch, protocol=2)
        if name.endswith(("1", "3", "5")):  # as numpy 1.x wrote them
            raw = raw.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
        (tmp_path / name).write_bytes(raw)
    data = cifar10(str(tmp_path))
    assert data.x.shape == (20, 3, 32, 32) and data.x_test.shape == (4, 3, 32, 32)
    assert data.y.tolist() == [0, 1, 2, 3] * 5


# ---------------------------------------------------------------- 2. one directory per run
def _claim_worker(args):
    from experiments import rundir

    path, unique = args
    try:
        return str(rundir.claim(path, "hydra.run.dir", unique=unique))
    except rundir.ClaimError as exc:
        return f"refused: {exc}"


def test_claims_are_atomic_across_processes(tmp_path):
    """Eight processes claim one time-stamped name at once: eight directories. Eight claim one
    name the user gave: one wins, seven are refused."""
    with multiprocessing.get_context("fork").Pool(8) as pool:
        stamped = pool.map(_claim_worker, [(tmp_path / "2026_mlp", True)] * 8)
        named = pool.map(_claim_worker, [(tmp_path / "mine", False)] * 8)
    assert sorted(stamped) == sorted([str(tmp_path / "2026_mlp"), *(str(tmp_path / f"2026_mlp_{n}") for n in range(1, 8))])
    assert sum(not r.startswith("refused") for r in named) == 1
    assert all(
        r == f"refused: hydra.run.dir={tmp_path / 'mine'}: already holds a run; choose a new directory "
        f"(or resume={tmp_path / 'mine'} to continue it)"
        for r in named
        if r.startswith("refused")
    )


def test_runs_started_together_never_share_a_directory(tmp_path):
    procs = [
        subprocess.Popen(
            [sys.executable, str(RUN), *TINY, f"seed={seed}"], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for seed in range(3)
    ]
    outs = [p.communicate(timeout=240) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], [o[1][-1500:] for o in outs]
    printed = {Path(o[0].strip().splitlines()[-1].removeprefix("run_dir: ")) for o in outs}
    assert printed == set(run_dirs(tmp_path)) and len(printed) == 3
    for run in printed:  # each directory holds one run: its own config and its own results
        seed = json.loads((run / "metrics.json").read_text())["seed"]
        assert f"seed: {seed}\n" in (run / ".hydra" / "config.yaml").read_text()
    assert sorted(json.loads((r / "metrics.json").read_text())["seed"] for r in printed) == [0, 1, 2]


# ---------------------------------------------------------------- 3. a refused run writes nothing anywhere
def test_a_refused_run_leaves_the_run_it_was_aimed_at_unchanged(cli, tmp_path):
    code, _, err = cli(*TINY, "hydra.run.dir=outputs/done")
    assert code == 0, err
    done = tmp_path / "outputs" / "done"
    before = snapshot(done)
    code, _, err = cli(*TINY, "hydra.run.dir=outputs/done", "optimizer.lr=0.5")
    one_error(code, err, 2, "error: hydra.run.dir=outputs/done: already holds a run; choose a new directory (or resume=")
    code, _, err = cli(*TINY, "name=../../outputs/done")
    one_error(code, err, 2, "error: name='../../outputs/done': must be a plain directory name (no '/', '\\' or '..')")
    code, _, err = cli("-m", *TINY, "hydra.sweep.dir=outputs/done", "seed=1,2")
    one_error(code, err, 2, "error: hydra.sweep.dir=outputs/done: already holds a run or a sweep; choose a new directory")
    assert snapshot(done) == before and run_dirs(tmp_path) == [] and sorted(p.name for p in (tmp_path / "outputs").iterdir()) == ["done"]


# ---------------------------------------------------------------- 4, 5. last.ckpt is always the newest epoch; Ctrl-C saves
# (Ctrl-C after a finished epoch, then resume: tests/test_cluster.py, beside SIGTERM and SIGUSR1)
SLOW = ("data.batch_size=8", "optimizer=sgd", "optimizer.lr=0.2", "trainer.deterministic=true", "callbacks.figures=false", "logger=none")
STEPS = 158  # an epoch of digits' 1,257 training images in batches of 8


def _global_step(path: Path) -> int:
    try:
        return int(torch.load(path, map_location="cpu", weights_only=True)["global_step"])
    except Exception:  # noqa: BLE001 — not written yet
        return -1


@pytest.mark.slow  # 15 s; the default suite keeps test_reliability's killed-run resume
def test_a_run_killed_after_a_worse_epoch_resumes_from_that_epoch(cli, tmp_path):
    """Validation gets worse in epoch 5 (0.1684 → 0.1768 val loss, deterministic): last.ckpt must
    still be epoch 5 when the process is killed in epoch 6, and the resume redoes only epoch 6.
    While the process is alive, ``resume=`` of its directory is refused (it holds the lock)."""
    run = tmp_path / "outputs" / "k"
    proc = subprocess.Popen(
        [sys.executable, str(RUN), *SLOW, "trainer.max_epochs=6", "callbacks.progress=none", "hydra.run.dir=outputs/k"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 240
    while _global_step(run / "checkpoints" / "last.ckpt") < 5 * STEPS and time.time() < deadline and proc.poll() is None:
        time.sleep(0.02)
    proc.send_signal(signal.SIGSTOP)  # frozen in epoch 6, still holding its directory's lock
    code, _, err = cli("resume=outputs/k")
    one_error(code, err, 2, f"error: resume={run.resolve()}: another process is training in this directory right now")
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert _global_step(run / "checkpoints" / "last.ckpt") == 5 * STEPS  # the newest finished epoch, not the best one
    rows = list(csv.DictReader(open(run / "history.csv")))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3, 4, 5]
    assert float(rows[4]["val/loss"]) > float(rows[3]["val/loss"])  # epoch 5 was worse: "best" stayed at epoch 4
    resumed = subprocess.run(
        [sys.executable, str(RUN), "resume=outputs/k", "callbacks.progress=plain"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert [line.split()[1] for line in resumed.stdout.splitlines() if line.startswith("epoch ")] == ["6/6"]  # only epoch 6 again
    after = list(csv.DictReader(open(run / "history.csv")))
    assert [int(r["epoch"]) for r in after] == [1, 2, 3, 4, 5, 6] and after[:5] == rows
    assert json.loads((run / "metrics.json").read_text())["steps"] == 6 * STEPS


def test_sigterm_while_starting_ends_with_one_line_and_leaves_nothing(tmp_path):
    for delay in (0.2, 2.0):  # while importing Hydra; after the directory was claimed, while importing Lightning
        proc = subprocess.Popen([sys.executable, str(RUN), *TINY], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(delay)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
        one_error(proc.returncode, err, 4, "error: stopped by SIGTERM ")
        assert run_dirs(tmp_path) == []


# ---------------------------------------------------------------- 6. sweeps
def test_a_sweep_with_a_bad_job_runs_nothing(cli, tmp_path):
    code, _, err = cli("-m", *TINY, "optimizer.lr=0.01,-1,0.001,nan")
    assert code == 2 and "Traceback" not in err
    assert error_lines(err) == [
        "error: job 1 (optimizer.lr=-1): optimizer.lr=-1: must be a number > 0",
        "error: job 3 (optimizer.lr=nan): optimizer.lr=nan: must be a number > 0",
        "error: 2 of the sweep's jobs have bad settings; no job was run",
    ]
    multiruns = tmp_path / "outputs" / "multiruns"
    assert not multiruns.exists() or not any(multiruns.iterdir())


def test_a_failing_job_is_recorded_and_the_others_finish(cli, tmp_path):
    code, _, err = cli("-m", *TINY, "optimizer=sgd", "optimizer.lr=0.01,1e6,0.02")
    assert code == 3, err[-2000:]
    sweep = next((tmp_path / "outputs" / "multiruns").iterdir())
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir() and p.name[0].isdigit())
    assert [(j / "metrics.json").exists() for j in jobs] == [True, False, True]
    failed = json.loads((jobs[1] / "failed.json").read_text())
    assert failed["exit"] == 3 and failed["job"] == 1 and failed["error"].startswith("train/loss is nan at step")
    lines = error_lines(err)
    assert lines[0].startswith("error: job 1: train/loss is nan at step") and len(lines) == 2
    assert lines[1] == (
        f"error: 1 job(s) of the sweep failed, the others finished: job 1 (exit 3); each failed job's failed.json says "
        f"why; sweep: {sweep.resolve()}"
    )


# ---------------------------------------------------------------- 7, 9. one line instead of a traceback
def _write_checkpoint(run: Path, content) -> None:
    (run / "checkpoints").mkdir(parents=True, exist_ok=True)
    (run / ".hydra").mkdir(exist_ok=True)
    (run / ".hydra" / "config.yaml").write_text("seed: 0\n")
    target = run / "checkpoints" / "last.ckpt"
    if isinstance(content, bytes):
        target.write_bytes(content)
    else:
        torch.save(content, target)


ONE_LINERS = {
    "gpu preset without a GPU": (["trainer=gpu"], "error: trainer.accelerator=gpu: no CUDA GPU is visible to torch"),
    "lr nan": (["optimizer.lr=nan"], "error: optimizer.lr=nan: must be a number > 0"),
    "lr inf": (["optimizer.lr=inf"], "error: optimizer.lr=inf: must be a number > 0"),
    "unknown monitored metric": (
        ["callbacks.checkpoint.monitor=val/accuracy"],
        "error: callbacks.checkpoint.monitor='val/accuracy': not a metric this run logs; valid: train/acc, "
        "train/loss, val/acc, val/acc_best, val/loss",
    ),
    "no training batches": (["+trainer.limit_train_batches=0"], "error: trainer.limit_train_batches=0: must be > 0"),
    "not a Trainer argument": (
        ["+trainer.foo=1"],
        "error: trainer.foo=1: not an argument of pytorch_lightning.Trainer; Trainer arguments: accelerator, strategy, devices",
    ),
    "a Trainer argument the template sets": (
        ["+trainer.gradient_clip_val=1"],
        "error: trainer.gradient_clip_val: set by the template; use regularization.grad_clip",
    ),
    "unknown precision": (["trainer.precision=foo"], "error: trainer.precision='foo': must be one of 32-true, 16-mixed, bf16-mixed"),
    "unknown loss": (["loss.name=foo"], "error: loss.name='foo': unknown loss; valid: cross_entropy, huber, mae, mse"),
    "unknown sam base": (
        ["optimizer=sam", "optimizer.base=foo"],
        f"error: optimizer.base='foo': unknown optimizer; valid: {', '.join(OPTIMIZERS.list())}",
    ),
    "two devices on the cpu preset": (
        ["trainer.devices=2"],
        "error: trainer.devices=2 with trainer.strategy=auto: several processes need "
        "a distributed preset; use trainer=ddp_cpu trainer.devices=2",
    ),
    "best checkpoint without validation": (
        ["+trainer.limit_val_batches=0"],
        "error: trainer.limit_val_batches=0 with test_ckpt=best: no validation, so no best checkpoint to test; set test_ckpt=last",
    ),
    "run dir under /proc": (["hydra.run.dir=/proc/dlf/run"], "error: hydra.run.dir=/proc/dlf/run: cannot create the directory"),
    "run dir inside a file": (
        ["hydra.run.dir=a_file/run"],
        "error: hydra.run.dir=a_file/run: cannot create the directory (a part of the path is a file)",
    ),
    "run dir name too long": ([f"hydra.run.dir=outputs/{'a' * 300}"], "error: hydra.run.dir=outputs/aaaa"),
    "out of memory while building": (
        ["model.hidden=[2000000,2000000]"],
        "error: out of memory while building the model or the data (model=mlp model.hidden=[2000000, 2000000]",
    ),
}


@pytest.mark.parametrize("args,expected", ONE_LINERS.values(), ids=ONE_LINERS.keys())
def test_a_user_error_is_one_line_and_leaves_no_run(cli, tmp_path, args, expected):
    if "no CUDA GPU" in expected and torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    (tmp_path / "a_file").write_text("not a folder")
    code, _, err = cli(*TINY, *args)
    line = one_error(code, err, 2, expected)
    if "too long" in expected or "a_file" in expected:
        assert line.endswith(")")
    assert run_dirs(tmp_path) == []


def test_a_refused_run_in_your_own_folder_removes_only_what_it_made(cli, tmp_path):
    mine = tmp_path / "mine"
    (mine / "tensorboard").mkdir(parents=True)
    (mine / "tensorboard" / "events.out").write_text("yours")
    (mine / "run.log").write_text("yours")
    (mine / "notes.txt").write_text("yours")
    before = snapshot(mine)
    code, _, err = cli(*TINY, f"hydra.run.dir={mine}", "optimizer.lr=-1")
    one_error(code, err, 2, "error: optimizer.lr=-1: must be a number > 0")
    assert snapshot(mine) == before and sorted(p.name for p in mine.iterdir()) == ["notes.txt", "run.log", "tensorboard"]


def test_gpus_are_checked_where_the_jobs_run():
    """A sweep submitted to SLURM from a login node without GPUs is not refused for that."""
    from conftest import compose_config
    from core.errors import ConfigError
    from experiments.preflight import preflight

    cfg = compose_config("trainer=gpu")
    preflight(cfg, local=False)
    if torch.cuda.is_available():
        return
    with pytest.raises(ConfigError, match="no CUDA GPU is visible"):
        preflight(cfg, local=True)


def test_last_ckpt_follows_every_epoch_when_validation_is_sparse(cli, tmp_path):
    code, _, err = cli(*TINY[1:], "trainer.max_epochs=3", "+trainer.check_val_every_n_epoch=2", "hydra.run.dir=outputs/s")
    assert code == 0, err
    metrics = json.loads((tmp_path / "outputs" / "s" / "metrics.json").read_text())
    assert _global_step(tmp_path / "outputs" / "s" / "checkpoints" / "last.ckpt") == metrics["steps"] == 3 * 20


CHECKPOINTS = {
    "empty": (b"", "not a readable checkpoint (empty, truncated or another format)"),
    "truncated": ("truncate", "not a readable checkpoint (empty, truncated or another format)"),
    "foreign": ({"weights": torch.zeros(3)}, "not a training checkpoint of this template (missing state_dict, epoch, global_step, loops)"),
    "pickled objects": (
        {"state_dict": {}, "epoch": 0, "global_step": 0, "loops": {}, "where": Path("/")},
        "holds pickled Python objects (pathlib.PosixPath), which are never loaded (weights only)",
    ),
}


@pytest.mark.parametrize("content,expected", CHECKPOINTS.values(), ids=CHECKPOINTS.keys())
def test_resume_refuses_a_broken_checkpoint_in_one_line(cli, tmp_path, content, expected):
    run = tmp_path / "outputs" / "broken"
    if content == "truncate":
        torch.save({"state_dict": {"w": torch.randn(1000)}, "epoch": 1, "global_step": 1, "loops": {}}, tmp_path / "whole.ckpt")
        content = (tmp_path / "whole.ckpt").read_bytes()[:2000]
    _write_checkpoint(run, content)
    before = snapshot(run)
    code, _, err = cli("resume=outputs/broken")
    one_error(code, err, 2, f"error: resume={run.resolve()}/checkpoints/last.ckpt: {expected}")
    assert snapshot(run) == before and run_dirs(tmp_path) == []


def test_out_of_memory_in_the_first_step_names_the_sizes(cli, tmp_path, monkeypatch):
    from lightning_modules.base import SupervisedModule

    def oom(self, batch, batch_idx):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    monkeypatch.setattr(SupervisedModule, "training_step", oom)
    code, _, err = cli(*TINY)
    one_error(
        code,
        err,
        2,
        "error: out of memory in the first training step (model=mlp model.hidden=[1024] model.activation=relu "
        "data.batch_size=64); lower data.batch_size or the model's size",
    )
    assert run_dirs(tmp_path) == []


def test_a_full_disk_keeps_the_last_complete_checkpoint(cli, tmp_path):
    """A 2.1 MB filesystem holds epoch 1's two checkpoints (930 kB each) but not epoch 2's new best."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if (
        os.geteuid() != 0
        or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2100k", "tmpfs", str(disk)], capture_output=True).returncode
    ):
        pytest.skip("needs root to mount a small tmpfs")
    try:
        code, _, err = cli(
            "trainer.max_epochs=5", "callbacks.progress=none", "callbacks.figures=false", "logger=none", f"hydra.run.dir={disk}/run"
        )
        line = one_error(
            code,
            err,
            3,
            f"error: no space left on the device while writing the run in {disk}/run; the last complete "
            f"checkpoint is kept: {disk}/run/checkpoints/last.ckpt; free some space, then continue with",
        )
        assert line.endswith(f"resume={disk}/run")
        assert _global_step(disk / "run" / "checkpoints" / "last.ckpt") == 20  # epoch 1 of 20 steps, whole
        assert not list(disk.rglob("*.tmp")) and not (disk / "run" / "metrics.json").exists()
    finally:
        subprocess.run(["umount", "--lazy", str(disk)], check=False)  # lazy: the in-process run may still hold run.log open


# ---------------------------------------------------------------- 8, 9. leftovers and silent nonsense
@pytest.mark.parametrize(
    "args,expected",
    [
        (["study=kfold", "study.seeds=[]"], "error: study.seeds=[]: "),
        (["study=mnist1d_table", "study.only=[unknown]"], "error: study.only=['unknown']: unknown or empty ['unknown']"),
    ],
    ids=["no seeds", "unknown member"],
)
def test_a_refused_study_leaves_no_directory(cli, tmp_path, args, expected):
    code, _, err = cli(*args)
    one_error(code, err, 2, expected)
    assert not (tmp_path / "outputs").exists(), list((tmp_path / "outputs").rglob("*"))


def test_a_run_without_a_test_split_says_it_was_not_tested(cli, tmp_path):
    code, out, err = cli(*TINY, "data.test_fraction=0")
    assert code == 0, err
    assert (
        "not tested: data.test_fraction=0 and dataset 'digits' has no test split of its own; metrics.json holds the validation "
        "metrics only" in out
    )
    metrics = json.loads((run_dirs(tmp_path)[0] / "metrics.json").read_text())
    assert not any(k.startswith("test/") for k in metrics) and metrics["test_checkpoint"] is None and metrics["val/acc_best"] > 0.5
