"""The regularizer ablation (``study=regularizers``): one task, no regularizer, each regularizer
alone and all together, over seeds; test accuracy with 95% intervals and the generalization gap
(accuracy on the clean training split minus test accuracy) per member."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from core.errors import ConfigError
from core.files import write_text_atomic
from experiments.studies.common import Clock, finish
from experiments.studies.members import check_seeds, chosen, run_members, sorted_bars
from numerics.intervals import interval

BASELINE = "none"


def check(s: DictConfig) -> None:
    check_seeds(s.seeds)
    if BASELINE not in s.members:
        raise ConfigError(f"study.members: needs the baseline member '{BASELINE}' (no regularizer) to compare against")
    names = chosen(s)
    if BASELINE not in names:
        raise ConfigError(f"study.only={names}: must include '{BASELINE}', the baseline every member is compared with")
    if not isinstance(s.epochs, int) or s.epochs < 1:
        raise ConfigError(f"study.epochs={s.epochs}: must be an integer >= 1")


def summarize(rows: list[dict], names: list[str]) -> list[dict]:
    table = []
    for name in names:
        ms = [r for r in rows if r["member"] == name]
        mean, std, half = interval(r["test_acc"] for r in ms)
        gaps = [r["train_acc"] - r["test_acc"] for r in ms]
        gap, _, gap_half = interval(gaps)
        table.append(
            {
                "member": name,
                "seeds": len(ms),
                "test_acc_mean": mean,
                "test_acc_std": std,
                "test_acc_ci95": half,
                "train_acc_mean": sum(r["train_acc"] for r in ms) / len(ms),
                "gap_mean": gap,
                "gap_ci95": gap_half,
                "epochs_mean": sum(r["epochs"] for r in ms) / len(ms),
                "wall_s_mean": sum(r["wall_s"] for r in ms) / len(ms),
            }
        )
    base = next(r for r in table if r["member"] == BASELINE)
    for r in table:
        r["delta_vs_none"] = r["test_acc_mean"] - base["test_acc_mean"]
        # better/worse than the baseline: the two 95% intervals do not overlap
        apart = abs(r["delta_vs_none"]) > r["test_acc_ci95"] + base["test_acc_ci95"]
        r["verdict"] = "baseline" if r is base else ("better" if apart and r["delta_vs_none"] > 0 else "worse" if apart else "within noise")
    return sorted(table, key=lambda r: -r["test_acc_mean"])


def write_report(study_dir: Path, s: DictConfig, table: list[dict], wall_s: float) -> None:
    base = next(r for r in table if r["member"] == BASELINE)
    others = [r for r in table if r["member"] != BASELINE]
    better = [r["member"] for r in others if r["verdict"] == "better"]
    worse = [r["member"] for r in others if r["verdict"] == "worse"]
    smaller_gap = [r["member"] for r in others if r["gap_mean"] < base["gap_mean"]]
    lines = [
        "# Regularizer ablation",
        "",
        f"Recipe `{' '.join(s.recipe)}`, {s.epochs} epochs, seeds {list(s.seeds)}; each member adds its overrides "
        f"(one strength each, not tuned). Test accuracy of the lowest-val/loss checkpoint, mean ± half-width of the 95% t-interval; "
        f"gap = accuracy on the clean training split (no augmentation, noise or mixing) − test accuracy. Wall time {wall_s:.0f} s.",
        "",
        "## Claim and what this study measured",
        "",
        "| claim | measured here |",
        "|---|---|",
        f"| Regularization trades training fit for a smaller generalization gap (Goodfellow et al. 2016, ch. 7) | "
        f"{len(smaller_gap)} of {len(others)} members have a smaller mean gap than no regularizer ({base['gap_mean'] * 100:.1f} points): "
        f"{', '.join(smaller_gap) or 'no member'} |",
        f'| Each regularizer improves test accuracy (the seeds\' "try each, keep what works") | better than no regularizer beyond the '
        f"intervals: {', '.join(better) or 'no member'}; worse: {', '.join(worse) or 'no member'}; the rest within noise at "
        f"{len(s.seeds)} seeds |",
        "",
        "| member | overrides | test acc (95% CI) | vs none (points) | verdict | clean train acc | gap (points) | epochs | wall s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in table:
        ovr = " ".join(o.removeprefix("regularization.") for o in s.members[r["member"]]) or "—"
        lines.append(
            f"| {r['member']} | `{ovr}` | {r['test_acc_mean']:.4f} ± {r['test_acc_ci95']:.4f} | {r['delta_vs_none'] * 100:+.1f} | "
            f"{r['verdict']} | "
            f"{r['train_acc_mean']:.4f} | {r['gap_mean'] * 100:.1f} ± {r['gap_ci95'] * 100:.1f} | {r['epochs_mean']:.0f} | "
            f"{r['wall_s_mean']:.1f} |"
        )
    lines += [
        "",
        "![test accuracy](figures/test_accuracy.png)",
        "",
        "![generalization gap](figures/generalization_gap.png)",
        "",
        "Files: `results.csv` (one row per run), `summary.csv`, `figures/` (PDF + PNG, also in `tensorboard/`), runs in "
        "`members/<member>/seed<k>/`.",
    ]
    write_text_atomic(study_dir / "report.md", "\n".join(lines) + "\n")


def run(cfg: DictConfig, study_dir: Path) -> dict:
    s, clock = cfg.study, Clock()
    check(s)
    names = chosen(s)
    rows = run_members(s, study_dir, names, lambda n: s.members[n], lambda n: s.epochs, score_train=True)
    table = summarize(rows, names)

    def draw(writer) -> None:
        sorted_bars(
            table,
            "member",
            "test_acc_mean",
            "test_acc_ci95",
            f"test accuracy (%), mean and 95% interval over {len(s.seeds)} seeds",
            study_dir / "figures",
            "test_accuracy",
            writer,
        )
        sorted_bars(
            table,
            "member",
            "gap_mean",
            "gap_ci95",
            "generalization gap (points): clean train accuracy − test accuracy",
            study_dir / "figures",
            "generalization_gap",
            writer,
            suffix=" pt",
        )

    finish(study_dir, clock, rows, table, draw, lambda wall_s: write_report(study_dir, s, table, wall_s))
    best = table[0]
    return {"best": best["member"], "test_acc_mean": best["test_acc_mean"]}
