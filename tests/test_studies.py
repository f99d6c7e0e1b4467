"""The studies made of named members (mnist1d_table, regularizers), each shrunk and run end to end
through the command line."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest

from conftest import run_cli
from experiments.studies.common import read_csv


@pytest.mark.slow  # the default suite must stay under 10 minutes on 2 cores; `pytest -m slow` runs it
def test_mnist1d_table_study_writes_the_table_next_to_the_published_figures(tmp_path):
    proc = run_cli("study=mnist1d_table", "study.only=[logistic,cnn]", "study.seeds=[0,1]", "study.epochs=2", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    study = tmp_path / proc.stdout.strip().splitlines()[-1].removeprefix("study_dir: ")
    rows = list(csv.DictReader(open(study / "results.csv")))
    assert [(r["member"], r["seed"], r["model"]) for r in rows] == [
        ("logistic", "0", "mlp"),
        ("logistic", "1", "mlp"),
        ("cnn", "0", "cnn"),
        ("cnn", "1", "cnn"),
    ]
    summary = {r["member"]: r for r in csv.DictReader(open(study / "summary.csv"))}
    assert summary["logistic"]["params"] == "410" and summary["cnn"]["params"] == "8710"  # 40·10 + 10; the reference CNN
    assert float(summary["cnn"]["test_acc_mean"]) > float(summary["logistic"]["test_acc_mean"])  # after 2 epochs already
    report = (study / "report.md").read_text()
    assert "| cnn | cnn | 8,710 | 2 |" in report and "| 0.94 |" in report and "| 0.32 |" in report
    assert (study / "figures" / "test_accuracy.pdf").stat().st_size > 1000


def test_mnist1d_table_rejects_an_unknown_member(tmp_path):
    proc = run_cli("study=mnist1d_table", "study.only=[cnn,lenet5]", cwd=tmp_path)
    assert proc.returncode == 2 and proc.stderr.strip() == (
        "error: study.only=['cnn', 'lenet5']: unknown or empty ['lenet5']; members: logistic, mlp, cnn, gru, lstm, resnet, transformer, vit"
    )


@pytest.mark.slow  # the default suite must stay under 10 minutes on 2 cores; `pytest -m slow` runs it
def test_regularizer_ablation_reports_accuracy_gap_and_verdicts(tmp_path):
    proc = run_cli("study=regularizers", "study.only=[none,dropout,weight_noise]", "study.seeds=[0,1]", "study.epochs=2", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    study = tmp_path / proc.stdout.strip().splitlines()[-1].removeprefix("study_dir: ")
    rows = list(csv.DictReader(open(study / "results.csv")))
    assert len(rows) == 6 and all(0.0 < float(r["train_acc"]) <= 1.0 for r in rows)
    member = json.loads((study / "members" / "dropout" / "seed0" / "metrics.json").read_text())
    assert member["train_acc_clean"] == float(rows[2]["train_acc"])  # cached with the member's metrics
    summary = {r["member"]: r for r in csv.DictReader(open(study / "summary.csv"))}
    assert summary["none"]["verdict"] == "baseline" and float(summary["none"]["delta_vs_none"]) == 0.0
    gap = float(summary["dropout"]["train_acc_mean"]) - float(summary["dropout"]["test_acc_mean"])
    assert abs(gap - float(summary["dropout"]["gap_mean"])) < 1e-9
    per_seed = {(r["member"], r["seed"]): float(r["test_acc"]) for r in rows}
    diffs = [per_seed["dropout", k] - per_seed["none", k] for k in ("0", "1")]
    assert abs(float(summary["dropout"]["delta_vs_none"]) - sum(diffs) / 2) < 1e-9  # paired by seed
    assert abs(float(summary["dropout"]["delta_ci95"]) - 12.706204736174698 * abs(diffs[0] - diffs[1]) / 2) < 1e-9  # t(.975, 1)·s/√2
    for stem in ("test_accuracy_vs_none", "generalization_gap"):
        assert (study / "figures" / f"{stem}.png").stat().st_size > 10_000
    report = (study / "report.md").read_text()
    assert "| weight_noise | `weight_noise=0.01` |" in report and "(2 seeds) |" in report


def test_regularizer_ablation_needs_two_seeds_to_pair():
    from conftest import compose_config
    from core.errors import ConfigError
    from experiments.studies import regularizers

    with pytest.raises(
        ConfigError, match=r"^study.seeds=\[0\]: each member is compared with 'none' paired by seed, which needs at least 2"
    ):
        regularizers.check(compose_config("study=regularizers", "study.seeds=[0]").study)
    regularizers.check(compose_config("study=regularizers", "study.only=[none]", "study.seeds=[0]").study)  # nothing to pair


def test_regularizer_ablation_needs_its_baseline(tmp_path):
    proc = run_cli("study=regularizers", "study.only=[dropout]", cwd=tmp_path)
    assert (
        proc.returncode == 2
        and proc.stderr.strip() == "error: study.only=['dropout']: must include 'none', the baseline every member is compared with"
    )


@pytest.mark.slow  # the default suite must stay under 10 minutes on 2 cores; `pytest -m slow` runs it
def test_loss_robustness_grid_and_figures(tmp_path):
    proc = run_cli(
        "study=loss_robustness",
        "study.seeds=[0,1]",
        "study.losses=[mse,mae]",
        "study.outlier_fractions=[0.0,0.3]",
        "study.epochs=3",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    study = tmp_path / proc.stdout.strip().splitlines()[-1].removeprefix("study_dir: ")
    rows = list(csv.DictReader(open(study / "results.csv")))
    assert sorted({(r["loss"], r["outlier_fraction"], r["side"]) for r in rows}) == [
        (loss, f, side) for loss in ("mae", "mse") for f, side in (("0.0", "none"), ("0.3", "both"), ("0.3", "one"))
    ]
    assert all(float(r["test_mse"]) > 0 for r in rows) and len(rows) == 12
    config = (study / "members" / "mae_outliers0.3_one" / "seed1" / ".hydra" / "config.yaml").read_text()
    assert "outlier_fraction: 0.3" in config and "name: mae" in config and "outlier_side: one" in config
    summary = {(r["loss"], r["outliers"], r["side"]): r for r in csv.DictReader(open(study / "summary.csv"))}
    one = [float(r["shift"]) for r in rows if r["member"] == "mse_outliers0.3_one"]
    assert (
        abs(float(summary["mse", "0.3", "one"]["shift"]) - sum(one) / 2) < 1e-9 and float(summary["mse", "0.3", "one"]["test_mse_ci"]) >= 0
    )
    for stem in ("test_error_vs_outliers", "fitted_functions"):
        assert (study / "figures" / f"{stem}.png").stat().st_size > 10_000
    report = (study / "report.md").read_text()
    assert "| mse | 30% | one |" in report and "30%: MSE − MAE " in report and "(2 seeds) |" in report


def test_one_sided_outliers_share_the_symmetric_ones_places_and_sizes():
    from datamodules.embedded import regression_outliers

    both = regression_outliers(n_samples=200, outlier_fraction=0.2, seed=3)
    one = regression_outliers(n_samples=200, outlier_fraction=0.2, outlier_side="one", seed=3)
    assert (one.extras["outliers"] == both.extras["outliers"]).all() and len(one.extras["outliers"]) > 20
    far = one.extras["outliers"]
    clean = np.setdiff1d(np.arange(200), far)
    assert np.array_equal(one.y[clean], both.y[clean])  # the clean targets untouched
    truth = one.extras["truth"](one.x)
    assert (one.y[far] - truth[far] > 1.5).all()  # every outlier above the truth: 10–20σ (3–6) plus noise of σ = 0.3
    flipped = (one.y[far] - both.y[far])[:, 0]  # 0 where the symmetric outlier went up; twice its size where it went down
    moved = flipped[np.abs(flipped) > 1e-5]
    assert len(moved) > 5 and ((moved >= 6 - 1e-4) & (moved <= 12 + 1e-4)).all()  # 2 × 10σ(1 + U): the same sizes


def test_loss_robustness_refuses_a_side_and_what_it_sets_per_member(cli, tmp_path):
    code, _, err = cli("data=regression_outliers", "data.dataset.outlier_side=left", cwd=tmp_path)
    assert code == 2 and err.strip().startswith("error: data.dataset.outlier_side='left': must be 'one' (every outlier above the")
    code, _, err = cli("study=loss_robustness", "study.sides=[up]", cwd=tmp_path)
    assert code == 2 and err.strip() == "error: study.sides=['up']: a non-empty list of distinct values from one, both"
    code, _, err = cli("study=loss_robustness", "study.losses=[mae,huber]", cwd=tmp_path)
    assert code == 2 and err.strip().startswith("error: study.losses=['mae', 'huber']: MSE is compared with the robust losses; give mse")
    code, _, err = cli("study=loss_robustness", "data.normalize=zscore", cwd=tmp_path)
    assert code == 2 and "the true function, which takes raw inputs" in err
    code, _, err = cli("study=loss_robustness", "loss.name=mae", cwd=tmp_path)
    assert code == 2 and err.strip().startswith("error: loss.name=mae: study=loss_robustness sets it per member; use study.losses")
    assert not (tmp_path / "outputs").exists() or not list((tmp_path / "outputs").rglob("metrics.json"))


def test_kfold_selects_on_folds_then_refits_and_tests_once(tmp_path):
    proc = run_cli("study=kfold", "study.candidates=[0.001,0.1]", "study.k=3", "study.seeds=[0]", "trainer.max_epochs=2", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    study = tmp_path / proc.stdout.strip().splitlines()[-1].removeprefix("study_dir: ")
    rows = {r["member"]: r for r in csv.DictReader(open(study / "results.csv"))}
    folds = [n for n in rows if n.startswith("cv_")]
    assert len(folds) == 6 and all(rows[n]["test_acc"] == "" for n in folds)  # selection never scored the test split
    for n in folds:
        metrics = json.loads((study / "members" / n / "seed0" / "metrics.json").read_text())
        assert not any(k.startswith("test/") for k in metrics)
    summary = list(csv.DictReader(open(study / "summary.csv")))
    winner = next(r for r in summary if r["selected"] == "True")
    means = {r["value"]: float(r["fold_acc_mean"]) for r in summary}
    assert means[winner["value"]] == max(means.values())
    assert float(rows[f"refit_{winner['value']}"]["test_acc"]) > 0.5
    assert "**Selected: `optimizer.lr=" in (study / "report.md").read_text()


def test_run_test_false_never_touches_the_test_split(train_run, monkeypatch):
    from datamodules.tensor_datamodule import TensorDataModule

    def forbidden(self):
        raise AssertionError("the test split was read")

    monkeypatch.setattr(TensorDataModule, "test_dataloader", forbidden)
    _, record = train_run("run_test=false", "data.kfold.k=3", "data.kfold.index=1", "data.val_fraction=0")
    assert "val/acc_best" in record and not any(k.startswith("test/") for k in record)


@pytest.mark.slow  # the default suite must stay under 10 minutes on 2 cores; `pytest -m slow` runs it
def test_batch_size_study_two_protocols_sharpness_and_line(tmp_path):
    proc = run_cli(
        "study=batch_size",
        "study.sizes=[256,1024]",
        "study.seeds=[0,1]",  # the sizes are compared paired by seed
        "study.epochs=2",
        "study.max_epochs=3",
        "study.lr_grid=[0.001,0.01]",
        "study.target_train_acc=0.5",
        "callbacks.sharpness.lbfgs_iters=2",
        "callbacks.sharpness.ascent_steps=3",
        "callbacks.sharpness.hessian_iters=3",
        "callbacks.sharpness.max_samples=512",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    study = tmp_path / proc.stdout.strip().splitlines()[-1].removeprefix("study_dir: ")
    rows = list(csv.DictReader(open(study / "results.csv")))
    assert sorted((r["protocol"], r["batch"], r["seed"]) for r in rows) == [
        (p, b, k) for p in ("a", "b") for b in ("1024", "256") for k in ("0", "1")
    ]
    assert all(float(r["sign_ascent"]) > 0 and float(r["hessian_top"]) != 0 for r in rows)
    assert len(list(csv.DictReader(open(study / "tuning.csv")))) == 4  # 2 sizes × 2 lrs, first seed
    line = list(csv.DictReader(open(study / "interpolation.csv")))
    assert len(line) == 41 and float(line[10]["alpha"]) == 0.0
    for stem in ("batch_size", "interpolation"):
        assert (study / "figures" / f"{stem}.png").stat().st_size > 10_000
    report = (study / "report.md").read_text()
    assert "| Large batches generalize worse (Keskar et al. 2017) | a |" in report and report.count("(2 seeds) |") >= 4


@pytest.mark.slow  # suite margin: the tiny bias-variance runs of the ensemble-optimizer tests below stay in the default suite
def test_bias_variance_decomposes_both_parts_and_marks_the_threshold(tmp_path):
    proc = run_cli(
        "study=bias_variance",
        "study.seeds=[0,1]",
        "study.widths=[2,64]",
        "study.regression.members=3",
        "study.regression.epochs=20",
        "study.classification.members=2",
        "study.classification.part_size=200",
        "study.classification.epochs=200",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    study = tmp_path / proc.stdout.strip().splitlines()[-1].removeprefix("study_dir: ")
    rows = list(csv.DictReader(open(study / "results.csv")))
    assert len(rows) == 8  # 2 parts × 2 seeds × 2 widths
    for r in rows:
        if r["part"] == "regression":
            assert abs(float(r["risk"]) - float(r["bias2"]) - float(r["variance"]) - 0.09) < 1e-6
        else:
            assert abs(float(r["risk"]) - float(r["bias2"]) - float(r["variance"])) < 1e-5  # the MSE decomposition on one-hot
            assert abs(float(r["ce_risk"]) - float(r["ce_bias"]) - float(r["ce_variance"])) < 1e-4
    wide = [r for r in rows if r["part"] == "classification" and r["width"] == "64"]
    assert all(float(r["train_acc"]) > 0.9 for r in wide)  # 200 signals memorized by 64 units
    report = (study / "report.md").read_text()
    assert "interpolation threshold width 64" in report and "| claim | measured here | verdict |" in report and "(2 seeds) |" in report
    summary = read_csv(study / "summary.csv")
    assert {"part", "width", "bias2", "variance", "bias2_ci", "variance_ci"} <= set(summary[0])
    assert (study / "figures" / "bias_variance.png").stat().st_size > 10_000


@pytest.mark.slow  # the default suite must stay under 10 minutes on 2 cores; `pytest -m slow` runs it
def test_bagging_and_boosting_curves_and_out_of_bag(tmp_path):
    proc = run_cli(
        "study=bagging",
        "study.seeds=[0,1]",
        "study.bagging.members=4",
        "study.bagging.epochs=2",
        "study.boosting.rounds=3",
        "study.boosting.epochs=2",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    study = tmp_path / proc.stdout.strip().splitlines()[-1].removeprefix("study_dir: ")
    rows = list(csv.DictReader(open(study / "results.csv")))
    assert [int(r["size"]) for r in rows if r["part"] == "bagging"] == [1, 2, 3, 4] * 2
    boost = [r for r in rows if r["part"] == "boosting"]
    assert 2 <= len(boost) <= 6 and all(float(r["alpha"]) > 0 for r in boost)
    summary = next(csv.DictReader(open(study / "summary.csv")))
    assert (
        0.3 < float(summary["oob_fraction_per_member"]) < 0.45 and float(summary["oob_coverage"]) > 0.8
    )  # ≈ 1/e each; 1 − (1 − 1/e)^4 overall
    assert (study / "figures" / "bagging_boosting.png").stat().st_size > 10_000
    kept = (study / "parts" / "bagging_seed0.json").read_text()
    (study / "parts" / "boosting_seeds0-1.json").unlink()  # as if killed during boosting
    again = run_cli(
        "study=bagging",
        "study.seeds=[0,1]",
        "study.bagging.members=4",
        "study.bagging.epochs=2",
        "study.boosting.rounds=3",
        "study.boosting.epochs=2",
        "study.resume=true",
        cwd=tmp_path,
    )
    assert again.returncode == 0, again.stderr[-2000:]
    assert (study / "parts" / "bagging_seed0.json").read_text() == kept and (study / "parts" / "boosting_seeds0-1.json").exists()
    assert len(list(study.parent.iterdir())) == 1


@pytest.mark.slow  # the default suite must stay under 10 minutes on 2 cores; `pytest -m slow` runs it
def test_generative_study_scores_samples_with_a_trained_classifier(tmp_path):
    args = (
        "study=generative",
        "study.seeds=[0,1]",
        "study.epochs=1",
        "study.samples=50",
        'study.classifier=["model=mlp","model.hidden=[32,16]","trainer.max_epochs=3"]',
        "study.launcher=local",  # the classifier and the members in two worker processes
        "study.workers=2",
    )
    proc = run_cli(*args, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    study_dir = Path(proc.stdout.strip().splitlines()[-1].removeprefix("study_dir: "))
    assert json.loads((study_dir / "classifier" / "metrics.json").read_text())["launcher"] == "local"
    rows = read_csv(study_dir / "results.csv")
    assert sorted({(r["member"], r["seed"]) for r in rows}) == [(m, k) for m in ("ddpm", "gan", "pixelcnn", "vae") for k in (0, 1)]
    for r in rows:
        assert 0 <= r["class_entropy"] <= math.log2(10) + 1e-9 and 0.1 <= r["confidence"] <= 1 and r["frechet"] >= 0
    table = {r["member"]: r for r in read_csv(study_dir / "summary.csv")}
    assert table["real digits (train vs test)"]["class_entropy_mean"] > 3.0  # the real classes are balanced
    assert 0 < table["pixelcnn"]["test_bits_per_dim_mean"] < math.log2(17) and table["gan"]["test_bits_per_dim_mean"] == ""
    report = (study_dir / "report.md").read_text()
    assert "| pixelcnn |" in report and "## Claims and what was measured" in report and "PixelCNN" in report
    assert {"samples.png", "frechet.png"} <= {p.name for p in (study_dir / "figures").iterdir()}
    again = run_cli(*args, "study.resume=true", cwd=tmp_path)  # everything kept: only the tables and figures are redone
    assert again.returncode == 0 and "finished earlier, kept" in again.stderr + again.stdout


TINY_BIAS_VARIANCE = (
    "study=bias_variance",
    "study.seeds=[0]",
    "study.widths=[8]",
    "study.regression.members=2",
    "study.regression.epochs=5",
    "study.classification.members=2",
    "study.classification.part_size=100",
    "study.classification.epochs=3",
)


def test_ensemble_studies_train_with_the_chosen_optimizer(cli, tmp_path):
    """optimizer= reaches the members: the same study with SGD and with momentum (and weight decay,
    dropout and a cosine schedule) ends elsewhere, and each report names its optimizer."""
    results = {}
    for name, extra in (("sgd", ()), ("momentum", ("regularization.weight_decay=1e-3", "regularization.dropout=0.1", "scheduler=cosine"))):
        (tmp_path / name).mkdir()
        code, out, err = cli(*TINY_BIAS_VARIANCE, f"optimizer={name}", *extra, cwd=tmp_path / name)
        assert code == 0, err[-2000:]
        study = tmp_path / name / out.strip().splitlines()[-1].removeprefix("study_dir: ")
        results[name] = [r for r in read_csv(study / "results.csv") if r["part"] == "regression"][0]
        assert f"Optimizer {name} (lr 0.003 regression" in (study / "report.md").read_text()
    assert results["sgd"]["train_mse"] != results["momentum"]["train_mse"]


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ("optimizer=adamp",),
            "error: study=bias_variance with optimizer=adamp: one optimizer steps the members' stacked tensors, and adamp's "
            "whole-tensor norms would mix them; use an elementwise optimizer (",
        ),
        (("optimizer.lr=0.1",), "error: optimizer.lr=0.1: study=bias_variance sets each part's learning rate; use study.regression.lr"),
        (("regularization.mixup_alpha=0.2",), "error: regularization.mixup_alpha=0.2: not applied by study=bias_variance (fixed epochs,"),
        (("scheduler=plateau",), "error: scheduler=plateau: study=bias_variance has no validation split to follow; use another"),
        (("trainer=ddp_cpu",), "error: trainer.devices=2 trainer.strategy=ddp: study=bias_variance trains its members in one process"),
        (("model=cnn",), "error: model=cnn: not used by study=bias_variance, which trains its own MLPs on its own data"),
        (("study.classification.lr=-1",), "error: study.classification.lr=-1: must be a number > 0"),
        (("+optimizer.weight_decay=0.1",), "error: optimizer.weight_decay: not an optimizer key; set regularization.weight_decay"),
    ],
)
def test_ensemble_studies_refuse_what_they_would_ignore(cli, tmp_path, args, message):
    code, _, err = cli(*TINY_BIAS_VARIANCE, *args)
    assert code == 2 and err.strip().startswith(message), err
    assert not list((tmp_path / "outputs" / "studies" / "bias_variance").glob("*/parts/*.json"))


def test_an_optimizer_lr_from_any_source_is_refused_by_the_ensemble_studies():
    """Not only on the command line: a composed config (a preset, a study file, the Python API)
    whose optimizer.lr differs from its option's value is refused too."""
    from conftest import compose_config
    from core.errors import ConfigError
    from experiments.studies.ensembles import check_optimizer

    check_optimizer(compose_config("study=bagging", "optimizer=momentum"), ("study.bagging.lr", "study.boosting.lr"))
    with pytest.raises(ConfigError, match=r"^optimizer.lr=0.5: study=bagging sets each part's learning rate; use study.bagging.lr or"):
        check_optimizer(
            compose_config("study=bagging", "optimizer=momentum", "optimizer.lr=0.5"), ("study.bagging.lr", "study.boosting.lr")
        )
