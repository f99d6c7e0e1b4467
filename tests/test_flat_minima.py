"""study=flat_minima: its paired verdicts on rows whose differences are known, SWA's start from the
study's epochs, its refusals, and (slow) the study shrunk end to end."""

from __future__ import annotations

import csv

import pytest
from omegaconf import OmegaConf

from conftest import run_cli
from experiments.studies.flat_minima import judge, overrides_of


def rows_with(deltas: dict[str, dict[str, list[float]]]) -> list[dict]:
    """Three seeds of small (every measure 1.0) and each member's per-seed values."""
    keys = ("test_acc", "gap", "hessian_top1", "hessian_trace", "sign_ascent", "loss_rise")
    rows = [{"member": "small", "seed": s, **{k: 1.0 for k in keys}} for s in range(3)]
    for member, values in deltas.items():
        for s in range(3):
            rows.append({"member": member, "seed": s, **{k: 1.0 for k in keys}, **{k: v[s] for k, v in values.items()}})
    return rows


def test_each_claim_is_decided_by_its_paired_differences():
    rows = rows_with(
        {
            "large": {"test_acc": [0.90, 0.91, 0.89], "hessian_top1": [5.0, 5.1, 4.9], "sign_ascent": [3.0, 3.2, 2.9]},  # all as Keskar
            "small_swa": {"test_acc": [1.05, 0.95, 1.01], "hessian_top1": [0.5, 0.52, 0.49], "loss_rise": [1.0, 1.0, 1.0]},
            "small_ema": {"test_acc": [1.2, 1.21, 1.19], "hessian_top1": [2.0, 2.1, 1.9]},  # better, yet sharper
        }
    )
    verdicts = {
        claim.split(" (")[0]: (measured, verdict) for claim, measured, verdict in judge(rows, ["small", "large", "small_swa", "small_ema"])
    }
    assert len(verdicts) == 3  # large_sam was not run: its claim is left out
    measured, verdict = verdicts["Large batches converge to sharper minima and generalize worse"]
    assert verdict == "consistent (3 seeds)" and measured.startswith("large − small, paired: test accuracy -10 ± 2.5 points")
    _, verdict = verdicts["SWA finds flatter, wider minima and generalizes better"]
    assert verdict == "partly: top Hessian eigenvalue consistent, the rest within the intervals (3 seeds)"
    _, verdict = verdicts["Averaging the iterates"]
    assert verdict == "the opposite for top Hessian eigenvalue (3 seeds)"


def test_swa_starts_after_the_fraction_of_the_study_s_epochs():
    s = OmegaConf.create(
        {
            "epochs": 40,
            "swa_start_fraction": 0.75,
            "members": {"a": ["regularization.swa_lr=1e-3"], "b": ["regularization.swa_lr=1e-3", "regularization.swa_start=5"]},
        }
    )
    assert overrides_of(s, "a") == ["regularization.swa_lr=1e-3", "regularization.swa_start=31"]
    assert overrides_of(s, "b") == ["regularization.swa_lr=1e-3", "regularization.swa_start=5"]  # given: kept


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ("study.seeds=[0]",),
            "error: study.seeds=[0]: every member is compared with 'small' paired by seed, which needs at least 2 seeds",
        ),
        (("study.landscape.points=2",), "error: study.landscape.points=2: must be an odd integer >= 3 (α = 0 is a point)"),
        (("study.seeds=[0,0,1]",), "error: study.seeds=[0, 0, 1]: a seed is repeated; each must be distinct"),
        (("run_test=false",), "error: run_test=false: study=flat_minima measures every member's final weights with its recipe's probes"),
        (("callbacks.hessian.enabled=false",), "error: callbacks.hessian.enabled=false: study=flat_minima measures every member's"),
        (("study.swa_start_fraction=1.0",), "error: study.swa_start_fraction=1.0: must be a number in [0, 1)"),
        (("study.only=[large,huge]",), "error: study.only=['large', 'huge']: unknown or empty ['huge']"),
    ],
)
def test_flat_minima_refuses_what_it_cannot_decide(cli, tmp_path, args, message):
    code, _, err = cli("study=flat_minima", *args, cwd=tmp_path)
    assert code == 2 and err.strip().startswith(message), err


@pytest.mark.slow  # the default suite must stay under 10 minutes on 2 cores; `pytest -m slow` runs it
def test_shrunken_flat_minima_study_writes_verdicts_landscapes_and_figures(tmp_path):
    args = ("study=flat_minima", "study.epochs=2", "study.seeds=[0,1]", "study.only=[large,large_sam]", "study.landscape.points=5")
    proc = run_cli(*args, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    study = tmp_path / proc.stdout.strip().splitlines()[-1].removeprefix("study_dir: ")
    summary = {r["member"]: r for r in csv.DictReader(open(study / "summary.csv"))}
    assert list(summary) == ["small", "large", "large_sam"]  # the baseline always runs
    assert float(summary["large"]["hessian_top1_mean"]) > 0 and float(summary["small"]["test_acc_vs_small"]) == 0.0
    report = (study / "report.md").read_text()
    assert "| Large batches converge to sharper minima and generalize worse (Keskar et al. 2017) | large − small, paired:" in report
    assert "SWA finds" not in report  # not run: no claim
    for stem in ("measures", "landscape_lines", "landscape_planes", "interpolation"):
        assert (study / "figures" / f"{stem}.png").stat().st_size > 5000
