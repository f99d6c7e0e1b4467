"""``study=grid``: a grid of configurations × seeds as member runs, run end to end on digits shrunk
to seconds (a group axis and a plain-key axis, the command line's overrides reaching every member,
selection on validation, resume), a grid from the user's own YAML file, and bad grids refused with
one line before any member starts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import CONFIG_DIR
from experiments.studies.common import read_csv

# every member: a tiny MLP, one epoch of a few batches, no logger
TINY = ("model.hidden=[16]", "study.epochs=1", "+trainer.limit_train_batches=4", "logger=none", "trainer.deterministic=true")
GRID = "study.grid={optimizer: [sgd], regularization.dropout: [0.0, 0.3]}"  # 1 × 2: a config group and a plain key
OPTIMIZERS = sorted(p.stem for p in (CONFIG_DIR / "optimizer").glob("*.yaml"))


def study_dir_of(out: str) -> Path:
    return Path(out.strip().splitlines()[-1].removeprefix("study_dir: "))


def test_grid_runs_every_combination_and_seed_selects_on_validation_and_resumes(cli, tmp_path):
    code, out, err = cli("study=grid", GRID, "study.seeds=[0,1]", *TINY)
    assert code == 0, err[-2000:]
    study = study_dir_of(out)
    assert study.parent == tmp_path / "outputs" / "studies" / "grid"

    rows = read_csv(study / "results.csv")
    assert [(r["optimizer"], r["regularization.dropout"], r["seed"]) for r in rows] == [
        ("sgd", 0.0, 0),
        ("sgd", 0.0, 1),
        ("sgd", 0.3, 0),
        ("sgd", 0.3, 1),
    ]
    assert all(0 < r["val_acc"] <= 1 and 0 < r["test_acc"] <= 1 and r["epochs"] == 1 and r["wall_s"] > 0 for r in rows)
    member = study / "members" / "optimizer=sgd,regularization.dropout=0.3" / "seed1"
    config = (member / ".hydra" / "config.yaml").read_text()
    assert "name: sgd" in config and "dropout: 0.3" in config and "- 16" in config and "seed: 1" in config  # grid + command line
    record = json.loads((member / "metrics.json").read_text())
    assert rows[3]["val_acc"] == pytest.approx(record["val/acc_best"]) and rows[3]["test_acc"] == pytest.approx(record["test/acc"])

    table = read_csv(study / "summary.csv")
    assert len(table) == 2 and all(r["seeds"] == 2 for r in table)
    best = max(table, key=lambda r: r["val_acc_mean"])
    assert [r["selected"] for r in table] == ["True", "False"] and table[0] is best  # best on validation, first
    for r in table:
        vals = [x["val_acc"] for x in rows if x["regularization.dropout"] == r["regularization.dropout"]]
        assert r["val_acc_mean"] == pytest.approx(sum(vals) / 2)

    report = (study / "report.md").read_text()
    marked = [line for line in report.splitlines() if "← selected" in line]
    assert len(marked) == 1 and marked[0].startswith(f"| `sgd` | `{best['regularization.dropout']}` |")
    assert f"**Selected on validation: `optimizer=sgd regularization.dropout={best['regularization.dropout']}`**" in report
    for stem in ("combinations", "vs_regularization_dropout"):  # sorted bars; the line of the one numeric axis
        assert (study / "figures" / f"{stem}.png").stat().st_size > 10_000 and (study / "figures" / f"{stem}.pdf").exists()

    done = {p: p.stat().st_mtime_ns for p in study.glob("members/*/seed*/metrics.json")}
    assert len(done) == 4
    code, out, err = cli("study=grid", GRID, "study.seeds=[0,1]", *TINY, "study.resume=true")
    assert code == 0, err[-2000:]
    assert study_dir_of(out) == study and len(list(study.parent.iterdir())) == 1
    assert {p: p.stat().st_mtime_ns for p in study.glob("members/*/seed*/metrics.json")} == done  # no member ran again
    assert read_csv(study / "results.csv") == rows


def test_a_grid_in_its_own_yaml_file(cli, tmp_path):
    """configs/study/<name>.yaml with ``defaults: [grid, _self_]`` (here on a search path outside the repository)."""
    own = tmp_path / "configs" / "study"
    own.mkdir(parents=True)
    (own / "my_grid.yaml").write_text(
        "# @package _global_\ndefaults:\n  - grid\n  - _self_\nstudy:\n  seeds: [3]\n  grid:\n    model.activation: [tanh]\n"
    )
    code, out, err = cli(f"hydra.searchpath=[file://{tmp_path / 'configs'}]", "study=my_grid", *TINY)
    assert code == 0, err[-2000:]
    study = study_dir_of(out)
    assert study.parent == tmp_path / "outputs" / "studies" / "my_grid"
    rows = read_csv(study / "results.csv")
    assert [(r["member"], r["model.activation"], r["seed"]) for r in rows] == [("model.activation=tanh", "tanh", 3)]  # replaced, not merged
    assert "`study.grid`: 1 combination, each trained with seeds [3]" in (study / "report.md").read_text()


@pytest.mark.parametrize(
    "args, error",
    [
        (["study.grid={}"], "error: study.grid={}: must be a non-empty mapping of config group or key → list of values"),
        (
            ["study.grid={optimizer: [sgd, nope]}"],
            f"error: study.grid.optimizer=[sgd,nope]: unknown optimizer nope; valid: {', '.join(OPTIMIZERS)}",
        ),
        (["study.grid={optimizer: adam}"], "error: study.grid.optimizer=adam: must be a non-empty list of values (one value: [adam])"),
        (
            ["study.grid={optimizer: [sgd], regularization.nope: [0.1]}"],
            "error: study.grid: with optimizer=sgd: regularization.nope=0.1: unknown key",
        ),
        (["study.grid={regularization.dropout: [0.1, 2.0]}"], "error: study.grid: regularization.dropout=2.0: must be a number in [0, 1)"),
        (
            ["study.grid={optimizer: [sgd]}", "optimizer=adam"],
            "error: study.grid.optimizer: also given on the command line (optimizer=adam)",
        ),
        (["study.grid={seed: [1, 2]}"], "error: study.grid.seed: the seeds are study.seeds"),
    ],
    ids=["empty", "unknown-option", "not-a-list", "unknown-key", "bad-value", "also-on-command-line", "seed"],
)
def test_a_bad_grid_is_refused_before_any_member_runs(cli, tmp_path, args, error):
    code, out, err = cli("study=grid", *args)
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 2 and len(lines) == 1 and lines[0].startswith(error), err[-2000:]
    left = tmp_path / "outputs" / "studies" / "grid"
    assert not left.exists() or not any(left.iterdir())  # nothing half-written


def test_selection_reads_validation_never_test():
    from experiments.studies.grid import summarize

    grid = {"a": {"optimizer": "sgd"}, "b": {"optimizer": "adam"}}
    rows = [
        {"member": m, "seed": k, "val_acc": v, "test_acc": t, "epochs": 1, "wall_s": 1.0}
        for m, v, t in (("a", 0.9, 0.99), ("b", 0.95, 0.80))
        for k in (0, 1)
    ]
    table = summarize(rows, grid, "val/acc_best")
    assert [(r["member"], r["selected"]) for r in table] == [("b", True), ("a", False)]
    mse = [{**r, "val_mse": r["val_acc"], "test_mse": r["test_acc"]} for r in rows]
    assert summarize(mse, grid, "val/mse_best")[0]["member"] == "a"  # lower is better


def test_every_study_module_is_found_without_registering_it():
    from experiments.studies import studies

    assert {"grid", "regularizers", "kfold", "optimizers"} <= set(studies())
    assert not {"common", "members", "surfaces", "optimizer_plots"} & set(studies())  # helpers have no run(cfg, study_dir)
