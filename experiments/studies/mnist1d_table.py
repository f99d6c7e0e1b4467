"""The MNIST-1D table (``study=mnist1d_table``): every family trained on MNIST-1D over several seeds
with the published protocol, the test accuracies next to the published ones (Greydanus 2020).

Members are ``study.members``: a name → the overrides that make it (model and its keys), its epoch
budget and, where the paper gives one, the published accuracy. All share ``study.recipe``; what
the user gives on the command line comes after both, then the member's epochs and seed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from omegaconf import DictConfig

from core.errors import ConfigError
from core.files import write_text_atomic
from experiments.studies.common import Clock, finish
from experiments.studies.members import check_seeds, chosen, run_members, sorted_bars

WITHIN = 0.03  # the target: logistic, MLP, CNN and GRU within 3 points of the published accuracy


def check(s: DictConfig) -> None:
    if not s.members:
        raise ConfigError("study.members: empty; give at least one member (name: {overrides: [...], epochs: N})")
    for name, m in s.members.items():
        if not isinstance(m.get("epochs"), int) or m.epochs < 1:
            raise ConfigError(f"study.members.{name}.epochs={m.get('epochs')}: must be an integer >= 1")
        if m.get("published") is not None and not 0 < m.published <= 1:
            raise ConfigError(f"study.members.{name}.published={m.published}: must be an accuracy in (0, 1] or null")
    check_seeds(s.seeds)
    chosen(s)
    if s.epochs is not None and (not isinstance(s.epochs, int) or s.epochs < 1):
        raise ConfigError(f"study.epochs={s.epochs}: must be an integer >= 1 or null (each member's own budget)")


def summarize(rows: list[dict], s: DictConfig) -> list[dict]:
    table = []
    for name in chosen(s):
        m = s.members[name]
        accs = [r["test_acc"] for r in rows if r["member"] == name]
        walls = [r["wall_s"] for r in rows if r["member"] == name]
        mean, std = float(np.mean(accs)), float(np.std(accs, ddof=1)) if len(accs) > 1 else 0.0
        published = m.get("published")
        table.append(
            {
                "member": name,
                "model": next(r["model"] for r in rows if r["member"] == name),
                "params": next(r["params"] for r in rows if r["member"] == name),
                "epochs": next(r["epochs"] for r in rows if r["member"] == name),
                "seeds": len(accs),
                "test_acc_mean": mean,
                "test_acc_std": std,
                "test_acc_min": min(accs),
                "test_acc_max": max(accs),
                "published": published if published is not None else "",
                "difference": mean - published if published is not None else "",
                "wall_s_mean": float(np.mean(walls)),
            }
        )
    return sorted(table, key=lambda r: -r["test_acc_mean"])


def write_report(study_dir: Path, s: DictConfig, table: list[dict], wall_s: float) -> None:
    lines = [
        "# The MNIST-1D table",
        "",
        f"Each member trained with the shared recipe `{' '.join(s.recipe)}` and its own overrides, seeds {list(s.seeds)}; "
        f"the final model scored on the dataset's 1,000 test signals. Published: Greydanus (2020), *Scaling down deep learning*, "
        f"Adam 1e-2, batch 100, 8,000 steps. Target: logistic, MLP, CNN and GRU within {WITHIN * 100:.0f} points of the published figure. "
        f"Wall time {wall_s:.0f} s.",
        "",
        "| member | model | parameters | epochs | test accuracy, mean ± std [min, max] | published | difference (points) | within "
        "target | wall s per run |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in table:
        pub = r["published"]
        diff = "" if pub == "" else f"{r['difference'] * 100:+.1f}"
        verdict = "" if pub == "" else ("yes" if abs(r["difference"]) <= WITHIN else "no")
        lines.append(
            f"| {r['member']} | {r['model']} | {int(r['params']):,} | {int(r['epochs'])} | {r['test_acc_mean']:.3f} ± "
            f"{r['test_acc_std']:.3f} "
            f"[{r['test_acc_min']:.3f}, {r['test_acc_max']:.3f}] | {'' if pub == '' else f'{pub:.2f}'} | {diff} | {verdict} | "
            f"{r['wall_s_mean']:.1f} |"
        )
    lines += [
        "",
        "![test accuracy](figures/test_accuracy.png)",
        "",
        "Files: `results.csv` (one row per run), `summary.csv`, `figures/` (PDF + PNG, also in `tensorboard/`), runs in "
        "`members/<member>/seed<k>/`.",
    ]
    write_text_atomic(study_dir / "report.md", "\n".join(lines) + "\n")


def run(cfg: DictConfig, study_dir: Path) -> dict:
    s, clock = cfg.study, Clock()
    check(s)
    rows = run_members(s, study_dir, chosen(s), lambda n: s.members[n].overrides, lambda n: s.epochs or s.members[n].epochs)
    table = summarize(rows, s)

    def draw(writer):
        label = f"test accuracy (%), mean ± std of {len(s.seeds)} seeds"
        sorted_bars(
            table, "member", "test_acc_mean", "test_acc_std", label, study_dir / "figures", "test_accuracy", writer, reference="published"
        )

    finish(study_dir, clock, rows, table, draw, lambda wall_s: write_report(study_dir, s, table, wall_s))
    best = table[0]
    return {
        "best": best["member"],
        "test_acc_mean": best["test_acc_mean"],
        "off_target": ", ".join(r["member"] for r in table if r["published"] != "" and abs(r["difference"]) > WITHIN) or "none",
    }
