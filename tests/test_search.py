"""Hyperparameter search (hydra_plugins/dlf_optuna_sweeper, experiments/search.py): the search
space syntax, a search's files and their agreement with the runs, continuation after an
interruption, pruning recorded as pruned, choosing by validation only, and bad settings."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml
from test_sweeps import _fake_train

from conftest import error_lines

TINY = ("trainer.max_epochs=2", "callbacks.progress=none", "callbacks.figures=false", "logger=none", "model.hidden=[32]")


def _trials(sweep: Path) -> list[dict]:
    return list(csv.DictReader(open(sweep / "trials.csv")))


def test_the_search_space_syntax_is_the_hydra_optuna_plugins():
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    from conftest import compose_config

    config = compose_config()  # first: Hydra's plugin scan runs the sweeper's module again (new class objects)
    from hydra_plugins.dlf_optuna_sweeper.optuna_sweeper import SearchError, format_value, search_space

    params = {
        "optimizer.lr": "tag(log, interval(1e-4, 1e-1))",
        "regularization.dropout": "interval(0, 0.5)",
        "data.batch_size": "choice(32, 64)",
        "seed": "range(0, 10, 3)",
        "model.hidden": "[64]",
        "trainer.max_epochs": "tag(int, interval(2, 8))",
    }
    space, fixed = search_space(params, ["optimizer.lr=0.01", "optimizer=sgd,adam"], config)
    assert space == {
        "regularization.dropout": FloatDistribution(0.0, 0.5),
        "data.batch_size": CategoricalDistribution([32, 64]),
        "seed": IntDistribution(0, 9, step=3),  # range's stop is excluded, as in Python
        "trainer.max_epochs": IntDistribution(2, 8),
        "optimizer": CategoricalDistribution(["sgd", "adam"]),
    }
    assert fixed == ["model.hidden=[64]", "optimizer.lr=0.01"]  # the command line wins over params
    assert search_space({"optimizer.lr": "tag(log, interval(1e-4, 1e-1))"}, [], config)[0] == {
        "optimizer.lr": FloatDistribution(1e-4, 1e-1, log=True)
    }
    assert format_value(0.1 + 0.2) == "0.30000000000000004" and format_value(None) == "null"
    with pytest.raises(SearchError, match=r"'optimizer.lrr' is not a config key"):
        search_space({"optimizer.lrr": "interval(0, 1)"}, [], config)
    with pytest.raises(SearchError, match=r"low > 0 with tag log"):
        search_space({"optimizer.lr": "tag(log, interval(0, 1))"}, [], config)
    with pytest.raises(SearchError, match=r"nothing to search"):
        search_space({}, ["optimizer.lr=0.1"], config)


def test_a_search_writes_consistent_files_and_continues_after_an_interruption(cli, tmp_path):
    """3 trials of 2 epochs; then a trial left running (as a SIGINT leaves it) is marked
    interrupted and not counted, and n_trials=4 runs exactly one more trial."""
    import optuna

    sweep = tmp_path / "search"
    args = ("-m", "hparams_search=mlp_digits", *TINY, "hydra.sweeper.seed=0", f"hydra.sweep.dir={sweep}")
    code, _, err = cli(*args, "hydra.sweeper.n_trials=3")
    assert code == 0, err
    rows = _trials(sweep)
    assert [r["number"] for r in rows] == ["0", "1", "2"] and {r["state"] for r in rows} == {"complete"}
    for r in rows:  # the value is the run's validation headline; test metrics ride along as information
        metrics = json.loads((Path(r["run_dir"]) / "metrics.json").read_text())
        assert float(r["value"]) == pytest.approx(metrics["val/acc_best"], abs=1e-12)
        assert float(r["test/acc"]) == pytest.approx(metrics["test/acc"], abs=1e-12)
        assert Path(r["run_dir"]) == sweep / r["number"]
        assert 1e-4 <= float(r["params.optimizer.lr"]) <= 1e-1 and r["params.data.batch_size"] in {"32", "64", "128", "256"}
    results = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    best = max(rows, key=lambda r: float(r["value"]))
    assert results["best_value"] == pytest.approx(float(best["value"])) and results["best_trial"] == int(best["number"])
    assert results["best_params"]["data.batch_size"] == int(best["params.data.batch_size"])
    for figure in ("search_history", "search_params"):
        assert (sweep / "figures" / f"{figure}.png").stat().st_size > 10_000
    summary = list(csv.DictReader(open(sweep / "summary.csv")))
    assert [s["job"] for s in summary] == ["0", "1", "2"] and {s["status"] for s in summary} == {"finished"}

    study = optuna.load_study(study_name="search", storage=f"sqlite:///{sweep / 'optuna.db'}")
    study.ask()  # trial 3 left running, as by a stopped invocation
    finished = {r["number"]: (Path(r["run_dir"]) / "metrics.json").stat().st_mtime_ns for r in rows}
    code, _, err = cli(*args, "hydra.sweeper.n_trials=4")
    assert code == 0, err
    rows = _trials(sweep)
    assert [(r["number"], r["state"]) for r in rows] == [
        ("0", "complete"),
        ("1", "complete"),
        ("2", "complete"),
        ("3", "interrupted"),
        ("4", "complete"),
    ]
    assert {r["number"]: (Path(r["run_dir"]) / "metrics.json").stat().st_mtime_ns for r in rows[:3]} == finished  # not redone
    params = [tuple(v for k, v in r.items() if k.startswith("params.")) for r in rows]
    assert params[4] not in params[:3]  # the seeded sampler draws on; it does not replay the first invocation's trials
    assert yaml.safe_load((sweep / "optimization_results.yaml").read_text())["trials"] == {"complete": 4, "pruned": 0, "fail": 1}
    code, _, err = cli("-m", "hparams_search=cnn_mnist1d", f"hydra.sweep.dir={sweep}")  # another search in the same folder
    assert code == 2 and "holds another search" in error_lines(err)[0], err


def test_pruned_trials_are_recorded_as_pruned_not_failed(cli, tmp_path):
    sweep = tmp_path / "search"
    code, _, err = cli(
        "-m",
        "hparams_search=mlp_digits",
        *TINY,
        "trainer.max_epochs=3",
        "hydra.sweeper.n_trials=4",
        "hydra.sweeper.pruner=median",
        "hydra.sweeper.pruner_startup_trials=1",
        "hydra.sweeper.pruner_warmup_epochs=0",
        "hydra.sweeper.sampler=random",
        "hydra.sweeper.seed=3",
        f"hydra.sweep.dir={sweep}",
    )
    assert code == 0, err  # pruning is not a failure
    rows = _trials(sweep)
    pruned = [r for r in rows if r["state"] == "pruned"]
    assert rows[0]["state"] == "complete" and pruned, rows
    first = json.loads((sweep / "0" / "metrics.json").read_text())
    for r in pruned:  # stopped early, below the median of the finished trials at that epoch
        metrics = json.loads((Path(r["run_dir"]) / "metrics.json").read_text())
        assert metrics["epochs"] < first["epochs"] and int(r["pruned_at_epoch"]) == metrics["pruned_at_epoch"]
    statuses = {s["job"]: s["status"] for s in csv.DictReader(open(sweep / "summary.csv"))}
    assert {statuses[r["number"]] for r in pruned} == {"pruned"}


def test_the_search_chooses_by_validation_and_records_crashed_trials(cli, tmp_path, monkeypatch):
    """lr 0.1 wins on validation, 0.2 on test; a trial with lr 0.3 crashes: it is recorded as failed
    (its traceback printed, failed.json written), the search goes on and exits 1."""
    import experiments.train

    fake = _fake_train({0.1: (0.90, 0.50), 0.2: (0.60, 0.99)})

    def train(cfg, run_dir, **kwargs):
        if cfg.optimizer.lr == 0.3:
            raise KeyError("a bug")
        return fake(cfg, run_dir, **kwargs)

    monkeypatch.setattr(experiments.train, "train", train)
    sweep = tmp_path / "search"
    code, _, err = cli(
        "-m",
        "hydra/sweeper=optuna",
        "logger=none",
        "optimizer.lr=choice(0.1,0.2,0.3)",
        "hydra.sweeper.n_trials=8",
        "hydra.sweeper.sampler=random",
        "hydra.sweeper.seed=0",
        f"hydra.sweep.dir={sweep}",
    )
    rows = _trials(sweep)
    assert {r["params.optimizer.lr"] for r in rows} == {"0.1", "0.2", "0.3"}  # all tried
    crashed = [r for r in rows if r["params.optimizer.lr"] == "0.3"]
    assert code == 1 and "KeyError: 'a bug'" in err and {r["state"] for r in crashed} == {"fail"}
    assert all(json.loads((Path(r["run_dir"]) / "failed.json").read_text())["error"] == "KeyError: 'a bug'" for r in crashed)
    results = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert results["best_params"] == {"optimizer.lr": 0.1} and results["best_value"] == 0.90


@pytest.mark.parametrize(
    "args, message",
    [
        (("hparams_search=nope",), "hparams_search=nope: unknown option; valid: cnn_mnist1d, mlp_digits"),
        (("hparams_search=mlp_digits", "hydra.sweeper.n_trials=0"), "hydra.sweeper.n_trials=0: must be an integer >= 1"),
        (("hparams_search=mlp_digits", "optimizer.lrr=interval(0,1)"), "'optimizer.lrr' is not a config key"),
        (
            ("hparams_search=mlp_digits", "hydra.sweeper.pruner=hyperband"),
            "hydra.sweeper.pruner=hyperband: unknown; accepted: none, median",
        ),
        (
            ("hparams_search=mlp_digits", "data.batch_size=choice(0,32)"),
            "searched data.batch_size=0: data.batch_size=0: must be an integer >= 1",
        ),
        (
            ("hparams_search=mlp_digits", "data=regression_outliers"),
            "hydra.sweeper.direction=maximize: each trial returns val/mse_best, which is better lower; "
            "use hydra.sweeper.direction=minimize",
        ),
        (("hparams_search=mlp_digits", "seed=tag(log, range(1, 10, 2))"), "tag log needs step 1"),
    ],
)
def test_bad_search_settings_end_in_one_line_and_create_nothing(cli, tmp_path, args, message):
    code, _, err = cli("-m", *args, f"hydra.sweep.dir={tmp_path / 'search'}")
    assert code == 2 and message in error_lines(err)[0], err
    assert not (tmp_path / "search").exists()


def test_a_search_without_multirun_is_refused(cli, tmp_path):
    code, _, err = cli("hparams_search=mlp_digits")
    assert code == 2 and error_lines(err) == [
        "error: hparams_search=mlp_digits: a search runs as a sweep; add -m (python experiments/run.py -m hparams_search=mlp_digits ...)"
    ]
    assert not (tmp_path / "outputs").exists()
