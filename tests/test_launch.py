"""study.launcher: members in worker processes or submitit jobs give the study the same tables as
inline, a member that fails does not stop the others, resume reruns just what is missing (a killed one
from its checkpoint), a detached study is aggregated later, and a SLURM array asks for the members'
resources."""

from __future__ import annotations

import csv
import json
import os
import shlex
from pathlib import Path

import pytest

SHRUNK = (
    "study=regularizers",
    "study.only=[none]",
    "study.seeds=[0,1]",
    "study.epochs=2",
    "study.recipe=['model=mlp','data=digits','model.hidden=[32]']",
    "trainer.deterministic=true",
)


def _rows(study: Path) -> list[dict]:
    return list(csv.DictReader(open(study / "results.csv")))


@pytest.mark.slow  # 30 s; the default suite must stay under 10 minutes on 2 cores (the detached and resume tests cover the launchers there)
def test_every_launcher_gives_the_inline_tables_in_processes_of_their_own(cli, tmp_path):
    import torch

    studies = tmp_path / "outputs" / "studies" / "regularizers"
    shrunk = ("study=regularizers", "study.only=[none,dropout]", "study.seeds=[0,1]", "study.epochs=2", "trainer.deterministic=true")
    launchers = {
        "local": ["study.launcher=local", "study.workers=2"],
        "submitit_local": ["study.launcher=submitit_local", "study.workers=2"],
        "inline": [],
    }
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # each worker's share of the 2 cores: CPU sums, so the numbers, depend on the thread count
    try:
        for name, launcher in launchers.items():
            code, out, err = cli(*shrunk, *launcher, f"hydra.run.dir={studies / name}")
            assert code == 0, err[-2000:]
    finally:
        torch.set_num_threads(threads)
    reference = [{k: v for k, v in r.items() if k != "wall_s"} for r in _rows(studies / "inline")]
    assert len(reference) == 4 and float(reference[0]["test_acc"]) > 0.3  # the reference CNN on MNIST-1D, 2 epochs
    for name in ("local", "submitit_local"):
        assert [{k: v for k, v in r.items() if k != "wall_s"} for r in _rows(studies / name)] == reference, name
        records = [json.loads(p.read_text()) for p in sorted((studies / name / "members").glob("*/seed*/metrics.json"))]
        assert {r["launcher"] for r in records} == {name} and {r["threads"] for r in records} == {1}
        assert len({r["pid"] for r in records} | {os.getpid()}) > 2 and (studies / name / "report.md").read_text()
    assert (studies / "local" / "logs" / "none_fit_seeds0-1.log").exists()  # a member's seeds: one fit (study.one_fit)
    jobs = json.loads((studies / "submitit_local" / "logs" / "jobs.json").read_text())
    assert sorted(jobs) == ["dropout/fit_seeds0-1", "none/fit_seeds0-1"]
    for label, job in jobs.items():
        record = json.loads((studies / "submitit_local" / "members" / label / "metrics.json").read_text())
        assert record["job_id"] == job["job_id"] and Path(job["log"]).is_file()


@pytest.mark.slow  # a killed worker and two resumes (~40 s)
def test_a_killed_member_continues_from_its_checkpoint_on_resume(cli, tmp_path):
    import signal
    import threading
    import time

    studies = tmp_path / "outputs" / "studies" / "regularizers"
    longer = (*SHRUNK[:2], "study.seeds=[0]", "study.epochs=30", *SHRUNK[4:])
    member = studies / "killed" / "members" / "none" / "seed0"

    def kill_after_first_checkpoint():
        deadline = time.time() + 120
        while time.time() < deadline and not (member / "checkpoints" / "last.ckpt").exists():
            time.sleep(0.02)
        for proc in Path("/proc").iterdir():
            try:
                cmdline = (proc / "cmdline").read_bytes()
            except OSError:
                continue
            if b"experiments.studies.member\0--serve" in cmdline:  # the study's one worker
                os.kill(int(proc.name), signal.SIGKILL)

    killer = threading.Thread(target=kill_after_first_checkpoint)
    killer.start()
    code, out, err = cli(*longer, "study.launcher=local", f"hydra.run.dir={studies / 'killed'}")
    killer.join()
    assert code == 3 and "none/seed0: killed by signal 9" in err, err[-2000:]
    code, out, err = cli(*longer, "study.launcher=local", "study.resume=true")
    assert code == 0, err[-2000:]
    assert "continuing from checkpoints/last.ckpt" in (studies / "killed" / "logs" / "none_seed0.log").read_text()
    code, out, err = cli(*longer, f"hydra.run.dir={studies / 'inline'}")  # the same member, never stopped
    assert code == 0, err[-2000:]
    resumed, reference = _rows(studies / "killed")[0], _rows(studies / "inline")[0]
    assert resumed["epochs"] == reference["epochs"] == "30" and resumed["test_acc"] == reference["test_acc"]


def test_a_detached_study_submits_and_a_resume_waits_and_aggregates(cli, tmp_path):
    studies = tmp_path / "outputs" / "studies" / "regularizers"
    detached = ["study.launcher=submitit_local", "study.detach=true"]
    code, out, err = cli(*SHRUNK, *detached)
    assert code == 0, err[-2000:]
    line = next(line for line in out.splitlines() if line.startswith("submitted 1 member job(s) (submitit_local)"))  # seeds 0, 1: one fit
    again = shlex.split(line.split("aggregate (and resubmit what failed) with: ", 1)[1])
    [study] = list(studies.iterdir())
    assert again[:2] == ["python", "experiments/run.py"] and again[-1] == f"study.resume={study}" and "study.detach=true" not in again
    assert not (study / "report.md").exists() and (study / "logs" / "jobs.json").exists()
    code, out, err = cli(*again[2:])  # the jobs may still run: the resume waits for them, submits nothing twice
    assert code == 0, err[-2000:]
    assert len(_rows(study)) == 2 and (study / "report.md").exists() and list(studies.iterdir()) == [study]


def test_the_slurm_array_asks_for_the_members_resources(cli, tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"  # SLURM is not on this machine: an sbatch that keeps the script it is given
    bin_dir.mkdir()
    (bin_dir / "sbatch").write_text(f'#!/bin/sh\ncp "$1" {tmp_path}/submitted.sh\necho "Submitted batch job 4242"\n')
    (bin_dir / "srun").write_text("#!/bin/sh\nexit 1\n")
    for tool in ("sbatch", "srun"):
        (bin_dir / tool).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    args = ["study.launcher=submitit_slurm", "study.detach=true", "study.workers=2", "study.slurm.partition=gpu", "trainer=ddp"]
    code, out, err = cli(*SHRUNK[:2], "study.seeds=[0,1,2]", *SHRUNK[3:], *args, "trainer.devices=2")
    assert code == 0 and "submitted 3 member job(s) (submitit_slurm)" in out, err[-2000:]
    script = (tmp_path / "submitted.sh").read_text()
    for flag in ("--array=0-2%2", "--partition=gpu", "--nodes=1", "--ntasks-per-node=2", "--gpus-per-node=2", "--time=240",
                 "--cpus-per-task=8", "--signal=USR2@120", "--requeue", "--job-name=dlf-regularizers"):  # fmt: skip
        assert f"#SBATCH {flag}\n" in script, flag
    assert "srun --unbuffered" in script and "submitit.core._submit" in script
    [study] = list((tmp_path / "outputs" / "studies" / "regularizers").iterdir())
    jobs = json.loads((study / "logs" / "jobs.json").read_text())
    assert {label: job["job_id"] for label, job in jobs.items()} == {f"none/seed{k}": f"4242_{k}" for k in range(3)}


@pytest.mark.slow  # three study runs with worker processes (~30 s)
def test_a_failed_member_stops_no_other_and_resume_reruns_only_it(cli, tmp_path):
    studies = tmp_path / "outputs" / "studies" / "regularizers"
    (studies / "first" / "members" / "none").mkdir(parents=True)
    seed1 = studies / "first" / "members" / "none" / "seed1"
    seed1.write_text("in the way")  # a file where the member's directory goes: its worker fails, the other member finishes
    one_by_one = "study.one_fit=false"  # a unit per seed (one fit of both would fail as one)
    code, out, err = cli(*SHRUNK, "study.launcher=local", "study.workers=2", "study.resume=true", one_by_one)
    assert code == 3 and "1 of 2 member run(s) failed, the others are kept: none/seed1: NotADirectoryError" in err, err[-2000:]
    assert f"(log: {studies / 'first' / 'logs' / 'none_seed1.log'})" in err
    assert (seed1.parent / "seed0" / "metrics.json").exists() and not (studies / "first" / "report.md").exists()
    seed1.unlink()
    code, out, err = cli(*SHRUNK, "study.launcher=local", "study.workers=2", "study.resume=true", one_by_one)
    assert code == 0 and "(finished earlier, kept)" in err + out, err[-2000:]
    assert (seed1 / "metrics.json").exists() and (studies / "first" / "report.md").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["study.launcher=slurm"], "error: study.launcher='slurm': unknown; valid: inline, local, submitit_local, submitit_slurm"),
        (["study.launcher=submitit_slurm"], "error: study.launcher=submitit_slurm: no sbatch and srun on this machine (SLURM"),
        (["study.detach=true"], "error: study.detach=true: the inline launcher trains in the study's process or its children"),
        (["study.launcher=local", "study.detach=true"], "error: study.detach=true: the local launcher trains in the study's"),
        (["study.launcher=submitit_local", "study.workers=1", "study.detach=true"], "error: study.detach=true with study.workers=1: a"),
        (["study.launcher=local", "study.slurm.partition=gpu"], "error: study.slurm.partition='gpu': SLURM resources of study.launcher"),
        (["study.resume=/nonexistent"], "error: study.resume=/nonexistent: not a study directory with finished or submitted work"),
        (["study.launcher=local", "study.workers=0"], "error: study.workers=0: must be an integer >= 1 or null"),
        (["study=bagging", "study.launcher=local"], "error: study.launcher=local: study=bagging trains its ensembles as seeded fits in"),
        (["study.launcher=local", "trainer=ddp_cpu"], "error: study.launcher=local with trainer.strategy=ddp trainer.devices=2"),
        (["study=none", "study.launcher=local"], "error: study.launcher=local study.workers=null study.detach=false: where a study's"),
        (["study.workers=2"], "error: study.workers=2: the inline launcher runs one member at a time; add study.launcher=local"),
    ],
)
def test_a_bad_launcher_setting_is_one_line_and_leaves_no_study(cli, tmp_path, args, message):
    code, _, err = cli("study=regularizers", *args)  # a later study= wins
    assert code == 2 and err.strip().startswith(message) and len(err.strip().splitlines()) == 1, err
    assert not list((tmp_path / "outputs").rglob("studies/*/*"))  # no study directory left that looks started


def test_more_workers_than_gpus_is_one_line(monkeypatch):
    from omegaconf import OmegaConf

    from core.errors import ConfigError
    from experiments.studies import launch

    monkeypatch.setattr(launch, "_gpus", lambda: 1)
    study, trainer = OmegaConf.create({"launcher": "local", "workers": 2}), OmegaConf.create({"accelerator": "gpu", "devices": 1})
    with pytest.raises(ConfigError, match=r"^study.workers=2: more workers than the 1 visible GPU\(s\) with trainer.accelerator=gpu$"):
        launch.workers_of(study, trainer)
    assert launch.workers_of(OmegaConf.create({"launcher": "local", "workers": None}), trainer) == 1  # null: one per GPU


def test_a_stopped_study_keeps_its_members(tmp_path):
    from experiments import rundir

    member = tmp_path / "members" / "none" / "seed0"
    member.mkdir(parents=True)
    assert not rundir.has_results(tmp_path)
    (member / "metrics.json").write_text("{}")
    assert rundir.has_results(tmp_path)  # what a stop of the study keeps, instead of removing the directory


@pytest.mark.parametrize(
    "started, checkpoint, expected",
    [
        (["seed=0"], "training", "resume"),  # stopped mid-training, same command: continue
        (["seed=0", "study.epochs=9"], "training", "train"),  # the study's command changed since: again from the start
        (["seed=0"], "unreadable", "train"),  # its checkpoint is unreadable: again from the start
        (["seed=0"], "weights", "train"),  # a seeds fit's member (weights only) whose record was lost: again from the start
        (None, "training", "train"),  # no record of how it started (an older study): again from the start
    ],
)
def test_a_stopped_member_continues_only_as_it_was_started(tmp_path, monkeypatch, caplog, started, checkpoint, expected):
    from core.errors import ConfigError
    from experiments import train as train_module
    from experiments.studies import common

    member = tmp_path / "members" / "none" / "seed0"
    (member / "checkpoints").mkdir(parents=True)
    (member / "checkpoints" / "last.ckpt").write_bytes(b"state")
    if started is not None:
        (member / common.MEMBER).write_text(json.dumps(started))
    calls = []

    def check(path, key):
        if checkpoint == "unreadable":
            raise ConfigError(f"{key}={path}: not a readable checkpoint")
        return {"state_dict": {}, "optimizer_states": [{"state": {}}] if checkpoint == "training" else [], "loops": {}}

    monkeypatch.setattr(train_module, "check_checkpoint", check)
    monkeypatch.setattr(train_module, "resume", lambda run_dir, fresh, report: calls.append("resume") or {"how": "resume"})
    monkeypatch.setattr(train_module, "train", lambda cfg, run_dir, report: calls.append("train") or {"how": "train"})
    monkeypatch.setattr(common, "compose", lambda config_name, overrides: None)
    record, ran = common.run_member(member, ["seed=0"])
    assert calls == [expected] and record == {"how": expected} and ran
    if expected == "train":
        assert not (member / "checkpoints").exists() and json.loads((member / common.MEMBER).read_text()) == ["seed=0"]
        assert started is None or "again from the start" in caplog.text


def test_a_kept_member_made_with_other_settings_is_refused(tmp_path):
    from core.errors import ConfigError
    from experiments.studies.launch import Unit, check_kept

    member = tmp_path / "members" / "none" / "seed0"
    member.mkdir(parents=True)
    (member / "metrics.json").write_text("{}")
    (member / ".member.json").write_text(json.dumps(["seed=0", "trainer.max_epochs=2"]))
    check_kept(Unit("none/seed0", member, ("seed=0", "trainer.max_epochs=2")))  # the same command: kept
    check_kept(Unit("none/seed0", member, ("trainer.max_epochs=2", "seed=0")))  # in another order: the same config, kept
    with pytest.raises(ConfigError, match=r"^study.resume: member none/seed0 finished with other settings than this command's "):
        check_kept(Unit("none/seed0", member, ("seed=0", "trainer.max_epochs=40")))
