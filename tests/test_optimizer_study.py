"""The optimizer study: its 2-D surfaces and stall detection, the real task's lr chosen on
validation (a diverging candidate the worst), then a shrunken study through the CLI, resumed
without redoing finished members."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from conftest import run_cli
from experiments.studies.optimizer_task import choose, grid_lr
from experiments.studies.optimizers import stall_step
from experiments.studies.surfaces import SURFACES, effective_lr, optimize, values
from lightning_modules.optimizers import OPTIMIZERS, optimizer_factory


@pytest.mark.parametrize("name", SURFACES)
def test_surfaces_are_zero_at_their_minima_and_positive_at_the_start(name):
    s = SURFACES[name]
    for m in s.minima:
        assert s.f(torch.tensor(m[0]), torch.tensor(m[1])).item() == pytest.approx(0.0, abs=1e-12)
    assert s.f(torch.tensor(s.start[0]), torch.tensor(s.start[1])).item() > 0.5


def test_adagrad_stalls_on_rosenbrock_where_momentum_converges():
    rosen = SURFACES["rosenbrock"]
    ada = optimize(rosen, optimizer_factory("adagrad", lr=1.0), 500)
    mom = optimize(rosen, optimizer_factory("momentum", lr=1e-3), 500)
    assert values(rosen, ada)[-1] > 1.0 and stall_step(ada.numpy(), rosen) is not None
    assert values(rosen, mom)[-1] < 0.01 and stall_step(mom.numpy(), rosen) is None
    # the mechanism: Adagrad's effective lr ends ~1000× below its nominal lr, frozen by the first gradients
    assert np.nanmedian(effective_lr(rosen, ada)[-50:].numpy()) < 0.01 * 1.0


def test_divergence_is_cut_short_not_propagated():
    path = optimize(SURFACES["rosenbrock"], optimizer_factory("sgd", lr=1.0), 50)
    assert torch.isnan(path[-1]).all() and torch.isfinite(path[0]).all()


@pytest.mark.slow  # the default suite must stay under 10 minutes on 2 cores; `pytest -m slow` runs it
def test_shrunken_study_writes_report_figures_and_resumes(tmp_path):
    args = [
        "study=optimizers",
        "study.seeds=[0,1]",  # each optimizer's two seeds as one fit
        "study.optimizers=[sgd,adagrad]",
        "study.task_optimizers=[sgd,adagrad]",
        "study.lr_factors=[1,1e6]",  # 10⁶× diverges: a worker's member, counted as the worst candidate
        "study.surfaces=[rosenbrock]",
        "study.surface_steps=30",
        "study.lr_grid=[0.001,0.01]",
        "trainer.max_epochs=2",
        "model=mlp",  # the digits MLP in place of the recipe's MNIST-1D CNN: above 50% in 2 epochs
        "data=digits",
    ]
    first = run_cli(*args, "study.launcher=local", cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    study = tmp_path / first.stdout.strip().splitlines()[-1].removeprefix("study_dir: ")
    assert study.parent == tmp_path / "outputs" / "studies" / "optimizers"
    for stem in ("trajectories_rosenbrock", "surface_losses", "learning_curves", "test_accuracy", "lr_tuning"):
        assert (study / "figures" / f"{stem}.pdf").stat().st_size > 1000 and (study / "figures" / f"{stem}.png").is_file()
    rows = list(csv.DictReader(open(study / "results.csv")))
    assert [(r["optimizer"], r["seed"]) for r in rows] == [("sgd", "0"), ("sgd", "1"), ("adagrad", "0"), ("adagrad", "1")]
    assert (study / "members" / "sgd" / "fit_seeds0-1" / "metrics.json").is_file()
    tuning = {(r["optimizer"], r["lr_factor"]): r["diverged"] for r in csv.DictReader(open(study / "tuning.csv"))}
    assert tuning["sgd", "1000000.0"] == "1" and (study / "members" / "tune" / "sgd" / "lr50000" / "seed100" / "diverged.json").is_file()
    assert tuning["sgd", "1.0"] == "0" and all(r["lr"] in ("0.05", "0.02") for r in csv.DictReader(open(study / "results.csv")))
    assert all(0.5 < float(r["val_acc_final"]) <= 1 for r in rows)
    report = (study / "report.md").read_text()
    assert "| claim (source) | measured here | verdict |" in report and "| adagrad | 0.02 |" in report
    events = EventAccumulator(str(study / "tensorboard"))
    events.Reload()
    assert "figures/learning_curves" in events.Tags()["images"]

    member = study / "members" / "sgd" / "seed0" / "metrics.json"
    kept = member.stat().st_mtime_ns
    (study / "members" / "adagrad" / "seed0" / "metrics.json").unlink()  # as if it had been killed
    again = run_cli(*args, "study.resume=true", "study.launcher=local", cwd=tmp_path)  # the missing member in a worker
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stdout.strip().splitlines()[-1] == first.stdout.strip().splitlines()[-1]
    assert json.loads((study / "members" / "adagrad" / "seed0" / "metrics.json").read_text())["launcher"] == "local"
    assert member.stat().st_mtime_ns == kept and "sgd seed 0" in again.stdout and "(finished earlier, kept)" in again.stdout
    assert json.loads((study / "members" / "adagrad" / "seed0" / "metrics.json").read_text())["epochs"] == 2
    assert len(list(study.parent.iterdir())) == 1  # the resumed invocation left no directory of its own


def test_study_rejects_unknown_optimizer(tmp_path):
    proc = run_cli("study=optimizers", "study.optimizers=[sgd,adamm]", cwd=tmp_path)
    assert proc.returncode == 2 and proc.stderr.strip().startswith(
        f"error: study.optimizers=['sgd', 'adamm']: unknown ['adamm']; valid: {', '.join(OPTIMIZERS.list())}"
    )
    assert not (tmp_path / "outputs").exists()  # the refused study left no directory


def candidate(lr, factor, val, seed=100):
    return {
        "optimizer": "adam",
        "lr_factor": factor,
        "lr": lr,
        "seed": seed,
        "val_acc_best": "" if val is None else val,
        "diverged": int(val is None),
    }


def test_the_lr_is_chosen_on_validation_and_a_diverged_candidate_is_the_worst():
    from experiments.train import TrainingFailed

    assert grid_lr(0.02, 3) == 0.06 and grid_lr(1e-3, 0.3) == 0.0003  # the override and directory name, not 0.06000000000000001
    rows = [candidate(3e-4, 0.3, 0.80), candidate(1e-3, 1, 0.90), candidate(3e-3, 3, 0.95), candidate(1e-2, 10, None)]
    c = choose("adam", rows)
    assert (c["lr"], c["lr_factor"], c["tune_val_acc"], c["tune_val_acc_config_lr"]) == (3e-3, 3, 0.95, 0.90)
    assert (c["at_grid_edge"], c["diverged_lrs"]) == (0, "0.01")
    # two tuning seeds: the mean decides, a divergence on either seed disqualifies; ties go to the smaller lr
    rows = [candidate(1e-3, 1, 0.9, 1), candidate(1e-3, 1, 0.8, 2), candidate(3e-3, 3, 0.85, 1), candidate(3e-3, 3, 0.85, 2)]
    rows += [candidate(1e-2, 10, 0.99, 1), candidate(1e-2, 10, None, 2)]
    assert choose("adam", rows)["lr"] == 1e-3 and choose("adam", rows)["tune_val_acc"] == pytest.approx(0.85)
    edge = choose("adam", [candidate(1e-3, 1, 0.5), candidate(3e-3, 3, 0.7)])
    assert edge["at_grid_edge"] == 1 and edge["lr"] == 3e-3
    with pytest.raises(TrainingFailed, match=r"^study.lr_factors: every lr tried for adam \(0.001, 0.003\) diverged on the tuning seeds"):
        choose("adam", [candidate(1e-3, 1, None), candidate(3e-3, 3, None)])


TINY = ("study=optimizers", "study.optimizers=[sgd]", "study.surfaces=[saddle]", "study.surface_steps=10", "study.lr_grid=[0.01]")


@pytest.mark.parametrize(
    "args, message",
    [
        (("study.lr_factors=[1,0]",), "error: study.lr_factors=[1, 0]: must be a non-empty list of distinct numbers > 0"),
        (("study.seeds=[0]",), "error: study.seeds=[0]: the tuned optimizers are compared paired by seed, which needs at least 2 seeds"),
        (("study.tune_seeds=[1]", "study.seeds=[0,1]"), "error: study.tune_seeds=[1]: must not share a seed with study.seeds=[0, 1]"),
        (("study.task_optimizers=[sgd,sgd]",), "error: study.task_optimizers=['sgd', 'sgd']: distinct optimizers ([] for the surfaces"),
        (("optimizer.lr=0.1",), "error: optimizer.lr=0.1: study=optimizers sets each member's optimizer and tunes its lr; use study."),
        (("optimizer=adam",), "error: optimizer=adam: study=optimizers sets each member's optimizer and tunes its lr"),
        (("run_test=true",), "error: run_test=true: study=optimizers sets it per stage (false while tuning the lr, true to compare)"),
        (("study.seeds=[0,0]",), "error: study.seeds=[0, 0] study.tune_seeds=[100, 101]: a seed is repeated"),
        (("study.tune_seeds=[]",), "error: study.tune_seeds=[]: must be a non-empty list of integers >= 0"),
    ],
)
def test_study_refuses_a_grid_or_seeds_it_cannot_decide_with(cli, tmp_path, args, message):
    code, _, err = cli(*TINY, *args, cwd=tmp_path)
    assert code == 2 and err.strip().startswith(message), err
    assert not (tmp_path / "outputs").exists()


def test_a_diverging_candidate_is_the_worst_and_the_tuned_optimizers_are_compared_paired(cli, tmp_path):
    """Moons, one epoch: sgd and momentum at 1× and 10⁶× their config lr (which diverges), then two
    seeds each at the lr chosen; resumed, every candidate (the diverged ones too) is kept."""
    args = (*TINY, "study.task_optimizers=[sgd,momentum]", "study.lr_factors=[1,1e6]", "study.seeds=[0,1]", "study.tune_seeds=[7]")
    args += ("model=mlp", "data=moons", "trainer.max_epochs=1")
    code, out, err = cli(*args, cwd=tmp_path)
    assert code == 0, err[-3000:]
    study = tmp_path / out.strip().splitlines()[-1].removeprefix("study_dir: ")
    tuning = list(csv.DictReader(open(study / "tuning.csv")))
    assert [(r["optimizer"], r["lr"], r["diverged"]) for r in tuning] == [
        ("sgd", "0.05", "0"),
        ("sgd", "50000.0", "1"),
        ("momentum", "0.02", "0"),
        ("momentum", "20000.0", "1"),
    ]
    diverged = study / "members" / "tune" / "sgd" / "lr50000" / "seed7"
    assert "train/loss is nan" in json.loads((diverged / "diverged.json").read_text())["error"]
    assert not (study / "members" / "tune" / "sgd" / "lr0.05" / "seed7" / "metrics.json").read_text().count("test/")  # never tested
    summary = {r["optimizer"]: r for r in csv.DictReader(open(study / "summary.csv"))}
    assert (summary["sgd"]["lr"], summary["sgd"]["diverged_lrs"], summary["sgd"]["at_grid_edge"]) == ("0.05", "50000", "1")
    results = list(csv.DictReader(open(study / "results.csv")))
    assert [(r["optimizer"], r["seed"], r["lr"]) for r in results] == [
        ("sgd", "0", "0.05"),
        ("sgd", "1", "0.05"),
        ("momentum", "0", "0.02"),
        ("momentum", "1", "0.02"),
    ]
    acc = {(r["optimizer"], r["seed"]): float(r["test_acc"]) for r in results}
    d = [acc["sgd", s] - acc["momentum", s] for s in ("0", "1")]
    assert float(summary["sgd"]["vs_momentum"]) == pytest.approx(np.mean(d), abs=1e-6) and summary["momentum"]["vs_momentum"] == "0.0"
    half = 12.706 * np.std(d, ddof=1) / np.sqrt(2)  # t(0.975, 1 degree of freedom)
    assert float(summary["sgd"]["vs_momentum_ci95"]) == pytest.approx(half, rel=1e-3, abs=1e-9)
    report = (study / "report.md").read_text()
    assert "| sgd | 0.05 | 0.05 (1×, edge; diverged at 50000) |" in report
    for stem in ("lr_tuning", "test_accuracy", "test_accuracy_vs_momentum", "learning_curves"):
        assert (study / "figures" / f"{stem}.png").stat().st_size > 5000

    kept = (diverged / "diverged.json").stat().st_mtime_ns
    code, out, err = cli(*args, "study.resume=true", cwd=tmp_path)
    assert code == 0 and "diverged (earlier, kept)" in err + out, err[-3000:]
    assert (diverged / "diverged.json").stat().st_mtime_ns == kept


def test_surfaces_only(cli, tmp_path):
    code, out, err = cli(*TINY, "study.task_optimizers=[]", "study.seeds=[0]", cwd=tmp_path)
    assert code == 0, err[-3000:]
    study = tmp_path / out.strip().splitlines()[-1].removeprefix("study_dir: ")
    assert not (study / "members").exists() and "Real task: not run (`study.task_optimizers=[]`)." in (study / "report.md").read_text()
    assert (study / "figures" / "trajectories_saddle.png").is_file() and not (study / "figures" / "lr_tuning.png").exists()
