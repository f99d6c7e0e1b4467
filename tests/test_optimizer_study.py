"""The optimizer study: its 2-D surfaces and stall detection, then a shrunken study through the
CLI, resumed without redoing finished members."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from conftest import run_cli
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
        "study.surfaces=[rosenbrock]",
        "study.surface_steps=30",
        "study.lr_grid=[0.001,0.01]",
        "trainer.max_epochs=2",
    ]
    first = run_cli(*args, cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    study = tmp_path / first.stdout.strip().splitlines()[-1].removeprefix("study_dir: ")
    assert study.parent == tmp_path / "outputs" / "studies" / "optimizers"
    for stem in ("trajectories_rosenbrock", "surface_losses", "learning_curves", "final_val_accuracy"):
        assert (study / "figures" / f"{stem}.pdf").stat().st_size > 1000 and (study / "figures" / f"{stem}.png").is_file()
    rows = list(csv.DictReader(open(study / "results.csv")))
    assert [(r["optimizer"], r["seed"]) for r in rows] == [("sgd", "0"), ("sgd", "1"), ("adagrad", "0"), ("adagrad", "1")]
    assert (study / "members" / "sgd" / "fit_seeds0-1" / "metrics.json").is_file()
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
