"""study.launcher: members in worker processes give the study the same tables as inline, a member
that fails does not stop the others, and resume reruns just what is missing."""

from __future__ import annotations

import csv
import json
import os
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


def test_local_workers_give_the_inline_tables_in_processes_of_their_own(cli, tmp_path):
    studies = tmp_path / "outputs" / "studies" / "regularizers"
    for name, launcher in (("local", ["study.launcher=local", "study.workers=2"]), ("inline", [])):
        code, out, err = cli(*SHRUNK, *launcher, f"hydra.run.dir={studies / name}")
        assert code == 0, err[-2000:]
    local, inline = studies / "local", studies / "inline"
    same = [{k: v for k, v in r.items() if k != "wall_s"} for r in _rows(local)]
    assert same == [{k: v for k, v in r.items() if k != "wall_s"} for r in _rows(inline)] and len(same) == 2
    records = [json.loads((local / "members" / "none" / f"seed{k}" / "metrics.json").read_text()) for k in (0, 1)]
    assert {r["launcher"] for r in records} == {"local"} and len({r["pid"] for r in records} | {os.getpid()}) == 3
    assert (local / "report.md").read_text() and (local / "logs" / "none_seed0.log").exists()


@pytest.mark.slow  # three study runs with worker processes (~30 s)
def test_a_failed_member_stops_no_other_and_resume_reruns_only_it(cli, tmp_path):
    studies = tmp_path / "outputs" / "studies" / "regularizers"
    (studies / "first" / "members" / "none").mkdir(parents=True)
    seed1 = studies / "first" / "members" / "none" / "seed1"
    seed1.write_text("in the way")  # a file where the member's directory goes: its worker fails, the other member finishes
    code, out, err = cli(*SHRUNK, "study.launcher=local", "study.workers=2", "study.resume=true")
    assert code == 3 and "1 of 2 member run(s) failed, the others are kept: none/seed1: NotADirectoryError" in err, err[-2000:]
    assert f"(log: {studies / 'first' / 'logs' / 'none_seed1.log'})" in err
    assert (seed1.parent / "seed0" / "metrics.json").exists() and not (studies / "first" / "report.md").exists()
    seed1.unlink()
    code, out, err = cli(*SHRUNK, "study.launcher=local", "study.workers=2", "study.resume=true")
    assert code == 0 and "(finished earlier, kept)" in err + out, err[-2000:]
    assert (seed1 / "metrics.json").exists() and (studies / "first" / "report.md").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["study.launcher=slurm"], "error: study.launcher='slurm': unknown; valid: inline, local"),
        (["study.launcher=local", "study.workers=0"], "error: study.workers=0: must be an integer >= 1 or null"),
        (["study=bagging", "study.launcher=local"], "error: study.launcher=local: study=bagging trains its ensembles as one vectorized"),
        (["study.launcher=local", "trainer=ddp_cpu"], "error: study.launcher=local with trainer.strategy=ddp trainer.devices=2"),
        (["study=none", "study.launcher=local"], "error: study.launcher=local study.workers=null: where a study's members train"),
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
