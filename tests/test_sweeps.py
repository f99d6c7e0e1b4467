"""The researcher's loop around sweeps: what a sweeper optimizes is the validation headline, never
a test metric; every -m sweep ends with summary.csv and summary.md; compare.py tables any folders."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest

from conftest import ReturnProbe, error_lines

TINY = ("trainer.max_epochs=2", "callbacks.progress=none", "callbacks.figures=false", "logger=none")


def test_the_selection_value_is_validation_only():
    from experiments.results import selection_value

    assert selection_value({"val/acc_best": 0.8, "test/acc": 0.99}) == 0.8
    assert selection_value({"val/mse_best": 0.3, "test/mse": 0.01}) == 0.3
    assert selection_value({"val/loss_best": 1.5, "test/loss": 0.1, "test/mmd": 0.2}) == 1.5
    assert selection_value({"test/acc": 0.99}) is None  # no validation split: nothing to select on


def _fake_train(scores):
    """train() stand-in: job with optimizer.lr=X gets (val, test) = scores[X]; writes metrics.json."""
    from core.files import write_json_atomic

    def train(cfg, run_dir, report=True, resume_from=None):
        val, test = scores[cfg.optimizer.lr]
        record = {"val/acc_best": val, "test/acc": test, "seed": int(cfg.seed), "epochs": 1, "wall_s": 0.1}
        write_json_atomic(Path(run_dir) / "metrics.json", record)
        return record

    return train


def test_a_sweep_selects_by_validation_even_when_test_disagrees(cli, tmp_path, monkeypatch):
    """lr 0.1 is better on validation, lr 0.2 on test: the value handed to the sweeper and the
    summary's order both follow validation."""
    import experiments.train

    monkeypatch.setattr(experiments.train, "train", _fake_train({0.1: (0.90, 0.50), 0.2: (0.60, 0.99)}))
    ReturnProbe.values = []
    code, _, err = cli("-m", *TINY, "+hydra.callbacks.probe._target_=conftest.ReturnProbe", "optimizer.lr=0.1,0.2", "seed=0,1")
    assert code == 0, err
    assert ReturnProbe.values == [0.90, 0.90, 0.60, 0.60]
    sweep = next((tmp_path / "outputs" / "multiruns").iterdir())
    md = (sweep / "summary.md").read_text()
    rows = [line for line in md.splitlines() if line.startswith("| optimizer.lr")]
    assert rows[0].startswith("| optimizer.lr=0.1 | 0.5000 ± 0.0000 | 0.9000 ± 0.0000 | 2 | 0 |"), md
    assert rows[1].startswith("| optimizer.lr=0.2 | 0.9900 ± 0.0000 | 0.6000 ± 0.0000 | 2 | 0 |"), md


def test_the_summary_pools_seeds_and_lists_failed_jobs(cli, tmp_path):
    code, _, err = cli("-m", *TINY, "optimizer=sgd", "optimizer.lr=0.05,1e6", "seed=0,1,2")
    assert code == 3, err  # the diverging jobs failed; the others finished
    sweep = next((tmp_path / "outputs" / "multiruns").iterdir())
    rows = list(csv.DictReader(open(sweep / "summary.csv")))
    assert [int(r["job"]) for r in rows] == [0, 1, 2, 3, 4, 5]
    assert [r["status"] for r in rows] == ["finished"] * 3 + ["failed"] * 3
    assert all(r["error"].startswith("train/loss is nan") for r in rows[3:])
    acc = [float(r["val/acc_best"]) for r in rows[:3]]
    mean, std = sum(acc) / 3, math.sqrt(sum((a - sum(acc) / 3) ** 2 for a in acc) / 2)
    half = 4.302652729911275 * std / math.sqrt(3)  # t(0.975, 2 degrees of freedom)
    md = (sweep / "summary.md").read_text()
    assert "| optimizer.lr=0.05 | " in md and f"{mean:.4f} ± {half:.4f} | 3 | 0 |" in md, md
    assert "| optimizer.lr=1000000.0 |" in md and md.rstrip().endswith("| 0 | 3 |")
    assert "Every run also has: `trainer.max_epochs=2 callbacks.progress=none callbacks.figures=False logger=none optimizer=sgd`" in md


def test_compare_tables_runs_sweeps_and_refuses_an_empty_folder(cli, tmp_path, capsys):
    """compare.py's main(), in this process (its command line is the same argv)."""
    from experiments import compare

    code, _, err = cli(*TINY, "hydra.run.dir=outputs/single")
    assert code == 0, err
    code, _, err = cli("-m", *TINY, "seed=1,2", "hydra.sweep.dir=outputs/sweep")
    assert code == 0, err
    assert compare.main(["outputs/single", "outputs/sweep", "--out", "cmp"]) == 0
    proc = capsys.readouterr()
    rows = list(csv.DictReader(open(tmp_path / "cmp" / "summary.csv")))
    assert len(rows) == 3 and {r["status"] for r in rows} == {"finished"}
    single = json.loads((tmp_path / "outputs" / "single" / "metrics.json").read_text())
    assert any(
        r["run_dir"] == str((tmp_path / "outputs" / "single").resolve()) and float(r["test/acc"]) == pytest.approx(single["test/acc"])
        for r in rows
    )
    assert "val/acc_best" in proc.out and (tmp_path / "cmp" / "summary.md").exists()
    (tmp_path / "empty").mkdir()
    assert compare.main(["empty", "--out", "cmp2"]) == 2
    assert error_lines(capsys.readouterr().err) == [
        "error: empty: holds no run (no metrics.json, failed.json or .hydra/config.yaml below it)"
    ]
    assert not (tmp_path / "cmp2").exists()
