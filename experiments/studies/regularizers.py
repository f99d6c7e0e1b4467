"""The regularizer ablation (``study=regularizers``): one task, no regularizer, each regularizer
alone and all together, over seeds; test accuracy with 95% intervals and the generalization gap
(accuracy on the clean training split minus test accuracy) per member. Each member is compared with
``none`` paired by seed (members of one seed share its split and data order): the 95% interval of
the per-seed difference decides "better" or "worse"."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from core.errors import ConfigError
from core.files import write_text_atomic
from experiments.studies.common import Clock, finish
from experiments.studies.members import check_seeds, chosen, difference_bars, run_members, sorted_bars
from numerics.intervals import direction, interval, paired

BASELINE = "none"


def check(s: DictConfig) -> None:
    check_seeds(s.seeds)
    if len(s.seeds) < 2 and len(chosen(s)) > 1:
        raise ConfigError(
            f"study.seeds={list(s.seeds)}: each member is compared with '{BASELINE}' paired by seed, which needs at least 2 seeds"
        )
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
    acc = {name: {r["seed"]: r["test_acc"] for r in rows if r["member"] == name} for name in names}
    gap = {name: {r["seed"]: r["train_acc"] - r["test_acc"] for r in rows if r["member"] == name} for name in names}
    for r in table:
        mean, half, n = paired(acc[r["member"]], acc[BASELINE])
        r["delta_vs_none"], r["delta_ci95"], r["paired_seeds"] = mean, half, n
        r["gap_vs_none"], r["gap_vs_none_ci95"], _ = paired(gap[r["member"]], gap[BASELINE])
        side = direction(mean, half, n)  # the per-seed difference's interval clear of zero
        r["verdict"] = "baseline" if r["member"] == BASELINE else "better" if side > 0 else "worse" if side < 0 else "within noise"
    return sorted(table, key=lambda r: -r["test_acc_mean"])


def write_report(study_dir: Path, s: DictConfig, table: list[dict], wall_s: float) -> None:
    base = next(r for r in table if r["member"] == BASELINE)
    others = [r for r in table if r["member"] != BASELINE]
    better = [r["member"] for r in others if r["verdict"] == "better"]
    worse = [r["member"] for r in others if r["verdict"] == "worse"]
    smaller_gap = [r["member"] for r in others if direction(r["gap_vs_none"], r["gap_vs_none_ci95"], r["paired_seeds"]) < 0]
    n = min((r["paired_seeds"] for r in others), default=len(s.seeds))
    lines = [
        "# Regularizer ablation",
        "",
        f"Recipe `{' '.join(s.recipe)}`, {s.epochs} epochs, seeds {list(s.seeds)}; each member adds its overrides "
        f"(one strength each, not tuned). Test accuracy of the lowest-val/loss checkpoint, mean ± half-width of the 95% t-interval; "
        f"gap = accuracy on the clean training split (no augmentation, noise or mixing) − test accuracy. Each member is compared "
        f"with `{BASELINE}` paired by seed (the members of one seed share its split and data order): the difference's mean over "
        f'seeds ± the half-width of its 95% t-interval, "better" or "worse" when that interval does not hold zero. '
        f"Wall time {wall_s:.0f} s.",
        "",
        "## Claims and what this study measured",
        "",
        "| claim | measured here | verdict |",
        "|---|---|---|",
    ]
    claims = [
        f"| Regularization trades training fit for a smaller generalization gap (Goodfellow et al. 2016, ch. 7) | "
        f"{len(smaller_gap)} of {len(others)} members have a smaller gap than no regularizer ({base['gap_mean'] * 100:.1f} points) "
        f"beyond the paired intervals: {', '.join(smaller_gap) or 'no member'} | "
        f"{'consistent' if len(smaller_gap) > len(others) / 2 else 'not observed'} ({n} seeds) |",
        f'| Each regularizer improves test accuracy (the seeds\' "try each, keep what works") | better than no regularizer beyond the '
        f"paired intervals: {', '.join(better) or 'no member'}; worse: {', '.join(worse) or 'no member'}; the rest within noise | "
        f"{'consistent' if len(better) == len(others) else f'{len(better)} of {len(others)}'} ({n} seeds) |",
    ]
    lines += claims if others else [f"| — | only `{BASELINE}` was trained (`study.only`): no member to compare with it | — |"]
    lines += [
        "",
        "| member | overrides | test acc (95% CI) | vs none, paired (points) | verdict | clean train acc | gap (points) | epochs "
        "| wall s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in table:
        ovr = " ".join(o.removeprefix("regularization.") for o in s.members[r["member"]]) or "—"
        lines.append(
            f"| {r['member']} | `{ovr}` | {r['test_acc_mean']:.4f} ± {r['test_acc_ci95']:.4f} | "
            f"{r['delta_vs_none'] * 100:+.1f} ± {r['delta_ci95'] * 100:.1f} | {r['verdict']} | "
            f"{r['train_acc_mean']:.4f} | {r['gap_mean'] * 100:.1f} ± {r['gap_ci95'] * 100:.1f} | {r['epochs_mean']:.0f} | "
            f"{r['wall_s_mean']:.1f} |"
        )
    lines += [
        "",
        *(["![test accuracy against no regularizer](figures/test_accuracy_vs_none.png)", ""] if others else []),
        "![generalization gap](figures/generalization_gap.png)",
        "",
        "Files: `results.csv` (one row per run), `summary.csv` (per member; `delta_vs_none` and `delta_ci95` are the paired "
        "difference in test accuracy), `figures/` (PDF + PNG, also in `tensorboard/`), runs in `members/<member>/seed<k>/`.",
    ]
    write_text_atomic(study_dir / "report.md", "\n".join(lines) + "\n")


def run(cfg: DictConfig, study_dir: Path) -> dict:
    s, clock = cfg.study, Clock()
    check(s)
    names = chosen(s)
    rows = run_members(s, study_dir, names, lambda n: s.members[n], lambda n: s.epochs, score_train=True)
    table = summarize(rows, names)

    def draw(writer) -> None:
        others = [r for r in table if r["member"] != BASELINE]
        if not others:  # study.only=[none]: nothing to compare
            return
        difference_bars(
            others,
            "member",
            "delta_vs_none",
            "delta_ci95",
            f"test accuracy − {BASELINE}'s (points), paired by seed: mean and 95% interval over {len(s.seeds)} seeds",
            study_dir / "figures",
            "test_accuracy_vs_none",
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
