"""study=double_descent: its peak, threshold and epoch-wise analysis against hand-made curves, its
training sets, a shrunken study in-process (files, values, resume) and its refusals."""

from __future__ import annotations

import json

import pytest
from omegaconf import OmegaConf

from experiments.studies.common import read_csv
from experiments.studies.double_descent import threshold, training_sets
from experiments.studies.double_descent_report import heights, peak, rise


def test_rise_finds_the_largest_climb_above_an_earlier_low():
    assert rise([0.5, 0.4, 0.6, 0.3]) == (1, 2)  # 0.4 → 0.6
    assert rise([0.5, 0.45, 0.7, 0.2, 0.6]) == (3, 4)  # 0.2 → 0.6 (+0.4) beats 0.45 → 0.7 (+0.25)
    assert rise([0.9, 0.8, 0.8, 0.1]) is None  # never above an earlier value


def curve(noise: float, errs: dict[int, list[float]], train: list[float]) -> tuple[list[dict], list[dict]]:
    """Rows per seed and the table of their means, as the study writes them (train error per width, the same for every seed)."""
    rows = [
        {"label_noise": noise, "seed": seed, "width": w, "test_err": e, "val_err": e + 0.01, "train_err": train[i]}
        for seed, es in errs.items()
        for i, (w, e) in enumerate(zip((4, 16, 64, 256), es))
    ]
    table = [
        {"label_noise": noise, "width": w, "val_err": sum(errs[s][i] for s in errs) / len(errs) + 0.01, "train_err": train[i]}
        for i, w in enumerate((4, 16, 64, 256))
    ]  # the table holds no test error: the points compared are chosen on validation
    return rows, table


def test_peak_heights_and_threshold_of_hand_made_curves():
    rows, table = curve(0.2, {0: [0.60, 0.55, 0.70, 0.50], 1: [0.62, 0.57, 0.68, 0.52]}, [0.5, 0.1, 0.0, 0.0])
    assert peak(table, 0.2) == (16, 64) and threshold(table, 0.2) == 64
    assert heights(rows, table, 0.2) == pytest.approx({0: 0.15, 1: 0.11})
    clean_rows, clean = curve(0.0, {0: [0.6, 0.5, 0.4, 0.3], 1: [0.6, 0.5, 0.45, 0.3]}, [0.5, 0.0005, 0.0, 0.0])
    assert peak(clean, 0.0) is None and heights(clean_rows, clean, 0.0) == {0: 0.0, 1: 0.0}
    assert threshold(clean, 0.0) == 16  # 99.95% of the labels fit counts as fitting them


def test_training_sets_replace_the_asked_fraction_and_keep_the_signals_across_levels():
    s = OmegaConf.create({"seeds": [0, 1], "n_train": 1000, "n_val": 500})
    clean, noisy = training_sets(s, 0.0), training_sets(s, 0.2)
    assert clean.x.shape == (2000, 40) and clean.rows.tolist() == noisy.rows.tolist() and clean.rows.shape == (2, 1000)
    assert clean.classes == 10 and clean.x_val.shape == (1000, 40) and clean.val_rows.shape == (2, 500)
    assert (clean.x == noisy.x).all() and (clean.x_val == noisy.x_val).all()  # the same signals at every level: levels pair by seed
    assert (clean.y_val == noisy.y_val).all()  # validation labels stay clean
    assert not (clean.x[:1000] == clean.x[1000:]).all()  # each seed its own draw
    for k in range(2):  # a seed never validates on a signal it trains on
        train = {tuple(r) for r in clean.x[clean.rows[k]].tolist()}
        assert not train & {tuple(r) for r in clean.x_val[clean.val_rows[k]].tolist()}
    changed = (clean.y != noisy.y).float().view(2, 1000).mean(1)
    assert ((changed > 0.17) & (changed < 0.23)).all(), changed  # 20% ± 3 points (binomial sd 1.3 points)
    assert clean.x_test.shape == (1000, 40) and abs(float(clean.x.mean())) < 0.1


SHRUNK = (
    "study=double_descent",
    "study.seeds=[0,1]",
    "study.widths=[2,64]",
    "study.n_train=200",
    "study.n_val=100",
    "study.epochs=60",
    "study.batch_size=50",
    "study.lr=3e-3",
    "study.eval_every=20",
    "study.label_noise=[0.2,0.0]",
)


def test_shrunk_study_writes_the_curves_and_resumes(cli, tmp_path):
    code, out, err = cli(*SHRUNK)
    assert code == 0, err[-2000:]
    study = tmp_path / out.strip().splitlines()[-1].removeprefix("study_dir: ")
    rows = read_csv(study / "results.csv")
    assert len(rows) == 8  # 2 levels × 2 seeds × 2 widths
    for r in rows:
        w = int(r["width"])
        assert r["params"] == 40 * w + w + w * w + w + 10 * w + 10  # two hidden layers of w units and a head of 10
        assert 0 <= r["train_err"] <= 1 and 0 <= r["test_err"] <= 1 and r["test_loss"] > 0
    wide = [r for r in rows if r["width"] == 64]
    assert all(r["train_err"] < 0.05 for r in wide)  # 200 signals memorized, noisy labels too
    assert all(r["test_err"] < 0.85 for r in wide)  # better than chance (0.9)
    narrow_noisy = [r for r in rows if r["width"] == 2 and r["label_noise"] == 0.2]
    assert all(r["train_err"] > 0.3 for r in narrow_noisy)  # 2 units cannot fit 10 classes
    summary = read_csv(study / "summary.csv")
    assert {"label_noise", "width", "params", "train_err", "train_err_ci", "val_err", "test_err", "test_err_ci"} <= set(summary[0])
    assert len(summary) == 4
    part = json.loads((study / "parts" / "noise0.2_width64.json").read_text())
    assert set(part["curve"]) == {"epoch", "train_err", "val_err", "test_err"}
    assert part["curve"]["epoch"] == [20, 40, 60]
    final = {r["seed"]: r["test_err"] for r in part["rows"]}
    assert part["curve"]["test_err"][-1] == pytest.approx([final[0], final[1]])  # the curve ends where the fit ended
    report = (study / "report.md").read_text()
    assert "| claim | measured here | verdict |" in report and "(2 seeds) |" in report and "Epoch-wise double descent" in report
    assert "width 64, 7,434 parameters for 200 training signals" in report  # the threshold
    assert "undecided: a peak needs at least 3 widths" in report  # two widths decide no peak
    assert (study / "figures" / "double_descent.png").stat().st_size > 10_000
    stamp = (study / "parts" / "noise0.2_width64.json").stat().st_mtime_ns
    code, out, err = cli(*SHRUNK, "study.resume=true")
    assert code == 0, err[-2000:]
    assert (study / "parts" / "noise0.2_width64.json").stat().st_mtime_ns == stamp  # kept, not trained again
    code, _, err = cli(*SHRUNK, "study.resume=true", "study.epochs=80", "study.widths=[1,2,64]")  # changed, and a new width first
    assert code == 2 and err.strip().startswith("error: study.resume: parts/noise0.0_width2.json was made with other settings")
    assert not (study / "parts" / "noise0.2_width1.json").exists()  # refused before anything trained


@pytest.mark.parametrize(
    "args, message",
    [
        (("study.label_noise=[1.0]",), "error: study.label_noise=[1.0]: a non-empty list of fractions in [0, 1)"),
        (("study.label_noise=[-0.1,0.0]",), "error: study.label_noise=[-0.1, 0.0]: a non-empty list of fractions in [0, 1)"),
        (("study.label_noise=0.2",), "error: study.label_noise=0.2: a non-empty list of fractions in [0, 1)"),
        (("study.label_noise=[0.2,0.2]",), "error: study.label_noise=[0.2, 0.2]: a level is repeated"),
        (("study.depth=0",), "error: study.depth=0: must be an integer >= 1"),
        (("study.widths=[64,8]",), "error: study.widths=[64, 8]: a non-empty increasing list of integers >= 1"),
        (("study.seeds=[0]",), "error: study.seeds=[0]: the 95% intervals over seeds need at least 2 seeds"),
        (("study.seeds=[0,0]",), "error: study.seeds=[0, 0]: a seed is repeated; each must be distinct"),
        (("study.n_train=5000",), "error: study.n_train=5000: must be an integer in [10, 3990]"),
        (("study.n_val=3900",), "error: study.n_val=3900: must be an integer in [10, 3800]"),
        (("study.widths=64",), "error: study.widths=64: a non-empty increasing list of integers >= 1"),
        (("study.seeds=3",), "error: study.seeds=3: must be a non-empty list of integers >= 0"),
        (("study.depth=true",), "error: study.depth=true: must be an integer >= 1"),
        (("study.one_fit=false",), "error: study.one_fit=false: study=double_descent always trains its members together"),
        (("trainer=ddp_cpu",), "error: trainer.devices=2 trainer.strategy=ddp: study=double_descent trains its members in one process"),
        (("study.eval_every=100",), "error: study.eval_every=100: at most study.epochs=60"),
        (("optimizer.lr=0.1",), "error: optimizer.lr=0.1: study=double_descent sets each part's learning rate; use study.lr"),
        (("model=cnn",), "error: model=cnn: not used by study=double_descent"),
        (("study.lr=0",), "error: study.lr=0: must be a number > 0"),
        (("study.launcher=local",), "error: study.launcher=local: study=double_descent trains each width's seeds as one seeded fit"),
    ],
)
def test_double_descent_refuses_bad_input_in_one_line(cli, tmp_path, args, message):
    code, _, err = cli(*SHRUNK, *args)
    assert code == 2 and err.strip().startswith(message) and len(err.strip().splitlines()) == 1, err
    assert not list((tmp_path / "outputs" / "studies" / "double_descent").glob("*/parts/*.json"))
