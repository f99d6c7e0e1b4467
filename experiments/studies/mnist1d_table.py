"""The MNIST-1D table (``study=mnist1d_table``): every family trained on MNIST-1D over several seeds
with the published protocol, the test accuracies next to the published ones (Greydanus 2020).

Members are ``study.members``: a name → the overrides that make it (model and its keys), its epoch
budget and, where the paper gives one, the published accuracy. All share ``study.recipe``; what
the user gives on the command line comes after both, then the member's epochs and seed.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from omegaconf import DictConfig

from callbacks.plot_style import new_figure, palette, save_figure, writer_for
from experiments.studies.common import FINISHED, Clock, log, member_overrides, run_member, write_csv
from experiments.validation import ConfigError

WITHIN = 0.03  # the target: logistic, MLP, CNN and GRU within 3 points of the published accuracy


def check(s: DictConfig) -> None:
    if not s.members:
        raise ConfigError("study.members: empty; give at least one member (name: {overrides: [...], epochs: N})")
    for name, m in s.members.items():
        if not isinstance(m.get("epochs"), int) or m.epochs < 1:
            raise ConfigError(f"study.members.{name}.epochs={m.get('epochs')}: must be an integer >= 1")
        if m.get("published") is not None and not 0 < m.published <= 1:
            raise ConfigError(f"study.members.{name}.published={m.published}: must be an accuracy in (0, 1] or null")
    if not s.seeds or any(not isinstance(x, int) or x < 0 for x in s.seeds):
        raise ConfigError(f"study.seeds={list(s.seeds)}: must be a non-empty list of integers >= 0")
    unknown = [n for n in (s.only or []) if n not in s.members]
    if unknown or (s.only is not None and not s.only):
        raise ConfigError(f"study.only={list(s.only)}: unknown or empty {unknown}; members: {', '.join(s.members)}")
    if s.epochs is not None and (not isinstance(s.epochs, int) or s.epochs < 1):
        raise ConfigError(f"study.epochs={s.epochs}: must be an integer >= 1 or null (each member's own budget)")


def chosen(s: DictConfig) -> list[str]:
    return list(s.only) if s.only else list(s.members)


def summarize(rows: list[dict], s: DictConfig) -> list[dict]:
    table = []
    for name in chosen(s):
        m = s.members[name]
        accs = [r["test_acc"] for r in rows if r["member"] == name]
        walls = [r["wall_s"] for r in rows if r["member"] == name]
        mean, std = float(np.mean(accs)), float(np.std(accs, ddof=1)) if len(accs) > 1 else 0.0
        published = m.get("published")
        table.append({
            "member": name, "model": next(r["model"] for r in rows if r["member"] == name), "params": next(r["params"] for r in rows if r["member"] == name),
            "epochs": next(r["epochs"] for r in rows if r["member"] == name), "seeds": len(accs), "test_acc_mean": mean, "test_acc_std": std,
            "test_acc_min": min(accs), "test_acc_max": max(accs), "published": published if published is not None else "",
            "difference": mean - published if published is not None else "", "wall_s_mean": float(np.mean(walls)),
        })
    return sorted(table, key=lambda r: -r["test_acc_mean"])


def bar_chart(table: list[dict], folder: Path, writer) -> None:
    """Mean test accuracy per member, sorted, with ±1 std whiskers and the published figure marked."""
    rows = sorted(table, key=lambda r: r["test_acc_mean"])
    fig, axes = new_figure(1, 1, width=6.0, height=0.42 * len(rows) + 1.3)
    ax = axes[0, 0]
    ours, ref = palette(2)
    y = np.arange(len(rows))
    mean = np.array([r["test_acc_mean"] * 100 for r in rows])
    ax.barh(y, mean, xerr=[r["test_acc_std"] * 100 for r in rows], color=ours, capsize=3, height=0.6, label="measured (mean ± std)")
    pub = [(i, r["published"] * 100) for i, r in enumerate(rows) if r["published"] != ""]
    if pub:
        ax.scatter([p for _, p in pub], [i for i, _ in pub], marker="D", color=ref, zorder=3, label="published")
    for i, (m, r) in enumerate(zip(mean, rows)):  # the label right of the whisker and of the published mark
        right = max(m + r["test_acc_std"] * 100, r["published"] * 100 if r["published"] != "" else 0)
        ax.text(right + 2, i, f"{m:.1f}%", va="center", fontsize=8)
    ax.set_yticks(y, [r["member"] for r in rows])
    ax.set_xlim(0, 110)
    ax.set_xlabel(f"test accuracy (%), {int(rows[0]['seeds'])} seeds")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    save_figure(fig, folder, "test_accuracy", writer)


def write_report(study_dir: Path, s: DictConfig, table: list[dict], wall_s: float) -> None:
    lines = [
        "# The MNIST-1D table",
        "",
        f"Each member trained with the shared recipe `{' '.join(s.recipe)}` and its own overrides, seeds {list(s.seeds)}; "
        f"the final model scored on the dataset's 1,000 test signals. Published: Greydanus (2020), *Scaling down deep learning*, "
        f"Adam 1e-2, batch 100, 8,000 steps. Target: logistic, MLP, CNN and GRU within {WITHIN * 100:.0f} points of the published figure. "
        f"Wall time {wall_s:.0f} s.",
        "",
        "| member | model | parameters | epochs | test accuracy, mean ± std [min, max] | published | difference (points) | within target | wall s per run |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in table:
        pub = r["published"]
        diff = "" if pub == "" else f"{r['difference'] * 100:+.1f}"
        verdict = "" if pub == "" else ("yes" if abs(r["difference"]) <= WITHIN else "no")
        lines.append(
            f"| {r['member']} | {r['model']} | {int(r['params']):,} | {int(r['epochs'])} | {r['test_acc_mean']:.3f} ± {r['test_acc_std']:.3f} "
            f"[{r['test_acc_min']:.3f}, {r['test_acc_max']:.3f}] | {'' if pub == '' else f'{pub:.2f}'} | {diff} | {verdict} | {r['wall_s_mean']:.1f} |"
        )
    lines += ["", "![test accuracy](figures/test_accuracy.png)", "",
              "Files: `results.csv` (one row per run), `summary.csv`, `figures/` (PDF + PNG, also in `tensorboard/`), runs in `members/<member>/seed<k>/`."]
    (study_dir / "report.md").write_text("\n".join(lines) + "\n")


def run(cfg: DictConfig, study_dir: Path) -> dict:
    s, clock = cfg.study, Clock()
    check(s)
    rows, total = [], len(chosen(s)) * len(s.seeds)
    for i, (name, seed) in enumerate(((n, k) for n in chosen(s) for k in s.seeds), 1):
        m = s.members[name]
        epochs = s.epochs or m.epochs
        overrides = [*s.recipe, *m.overrides, *member_overrides(f"trainer.max_epochs={epochs}", f"seed={seed}")]
        record, ran = run_member(study_dir / "members" / name / f"seed{seed}", overrides)
        rows.append({"member": name, "model": record["model"], "seed": seed, "test_acc": record["test/acc"], "params": record["params"],
                     "epochs": record["epochs"], "wall_s": record["wall_s"]})
        log.info(f"[{i}/{total}] {name} seed {seed}: test/acc {record['test/acc']:.4f} ({record['wall_s']:.1f} s)"
                 f"{'' if ran else ' (finished earlier, kept)'}")
    write_csv(study_dir / "results.csv", rows)
    table = summarize(rows, s)
    write_csv(study_dir / "summary.csv", table)
    writer = writer_for(study_dir / "tensorboard")
    bar_chart(table, study_dir / "figures", writer)
    if writer is not None:
        writer.close()
    write_report(study_dir, s, table, clock())
    (study_dir / FINISHED).write_text(json.dumps({"wall_s": clock(), "members": len(rows)}, indent=2) + "\n")
    best = table[0]
    return {"best": best["member"], "test_acc_mean": best["test_acc_mean"],
            "off_target": ", ".join(r["member"] for r in table if r["published"] != "" and abs(r["difference"]) > WITHIN) or "none"}
