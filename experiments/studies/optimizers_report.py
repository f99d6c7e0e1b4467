"""report.md of the optimizer study: each textbook claim beside what this study measured."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Optional

from omegaconf import DictConfig

from core.files import write_text_atomic
from experiments.studies.optimizer_families import ADAM_TYPE, ADAPTIVE, MOMENTUM, SGD_TYPE
from experiments.studies.optimizer_task import BASELINE, LOSS_MARK, test_by_seed
from numerics.intervals import direction, paired


def _fmt(v, digits: int = 4) -> str:
    if v in ("", None) or (isinstance(v, float) and math.isnan(v)):
        return "—"
    return f"{v:.{digits}g}" if isinstance(v, float) else str(v)


Claim = Optional[tuple[str, str, str]]  # (claim and source, what was measured, verdict); None: not measured in this run


class Measured:
    """The study's numbers, by surface and optimizer (``surfaces``) and by optimizer (``table``)."""

    def __init__(self, surface_rows: list[dict], table: list[dict], members: list[dict], sam_base: str):
        self.rows = surface_rows
        self.surface = {(r["surface"], r["optimizer"]): r for r in surface_rows}
        self.task = {r["optimizer"]: r for r in table}
        self.members, self.sam_base = members, sam_base

    def paired(self, a: str, b: str) -> tuple[float, float, int]:
        """Test accuracy of tuned ``a`` − tuned ``b``, paired by seed: (mean, 95% half-width, seeds)."""
        return paired(test_by_seed(self.members, a), test_by_seed(self.members, b))

    def best(self, names, key: str, lowest: bool = False) -> Optional[dict]:
        """The row of ``names`` with the highest (or lowest) real-task ``key``, skipping missing values."""
        rows = [self.task[n] for n in names if n in self.task and self.task[n][key] != "" and not math.isnan(self.task[n][key])]
        return (min if lowest else max)(rows, key=lambda r: r[key]) if rows else None


def adagrad_stalls(m: Measured) -> Claim:
    ada = [r for r in m.rows if r["optimizer"] == "adagrad"]
    if not ada:
        return None

    def shrink(surface, name):
        v = m.surface.get((surface, name), {}).get("end_eff_lr_ratio", "")
        return "—" if v == "" else f"{v:.2g}×"

    def seen(r):
        stall = f"slows to a crawl at step {r['stall_step']}" if r["stall_step"] != "" else "no stall"
        return (
            f"{r['surface']}: {stall}, final f {_fmt(r['final_f'], 3)}; effective lr at the end {shrink(r['surface'], 'adagrad')} "
            f"its nominal lr (rmsprop {shrink(r['surface'], 'rmsprop')}, adadelta {shrink(r['surface'], 'adadelta')})"
        )

    return (
        "Adagrad divides each step by the root of all squared gradients so far, so its effective learning rate only "
        "shrinks and it can stall short of the minimum; RMSprop and Adadelta use a moving average instead (Duchi et al. 2011; "
        "Zeiler 2012).",
        "; ".join(seen(r) for r in ada),
        "consistent" if any(r["stall_step"] != "" for r in ada) else "not observed",
    )


def momentum_accelerates(m: Measured) -> Claim:
    ros = {o: m.surface[("rosenbrock", o)]["steps_to_converge"] for o in SGD_TYPE if ("rosenbrock", o) in m.surface}
    if "sgd" not in ros or len(ros) < 2:
        return None
    steps = {o: (v if v != "" else math.inf) for o, v in ros.items()}
    fast = min(v for o, v in steps.items() if o != "sgd")
    text = ", ".join(f"{o} {'never' if v == math.inf else v}" for o, v in steps.items())
    return (
        "Momentum accelerates along narrow curved valleys such as Rosenbrock's (Polyak 1964; Sutskever et al. 2013).",
        f"steps to f < 0.01 on Rosenbrock with each one's tuned lr: {text}",
        "consistent" if fast < steps["sgd"] else "not observed",
    )


def adam_trains_faster(m: Measured) -> Claim:
    key = f"epochs_to_train_loss_{LOSS_MARK:g}"
    adam, sgdm = m.best(ADAM_TYPE, key, lowest=True), m.best(SGD_TYPE, key, lowest=True)
    if not (adam and sgdm):
        return None
    return (
        "Adam-type methods drive the training loss down faster than SGD (Kingma & Ba 2015).",
        f"median epochs to train loss < {LOSS_MARK:g}, each at its tuned lr: fastest Adam-type {adam['optimizer']} {_fmt(adam[key])}, "
        f"fastest SGD-type {sgdm['optimizer']} {_fmt(sgdm[key])}",
        "consistent" if adam[key] < sgdm[key] else "not observed",
    )


def _paired_text(d: float, half: float, n: int) -> str:
    return f"{d * 100:+.1f} ± {half * 100:.1f} points ({n} seeds, paired)"


def adaptive_generalizes_worse(m: Measured) -> Claim:
    adaptive, momentum = m.best(ADAPTIVE, "val_acc_mean"), m.best(MOMENTUM, "val_acc_mean")
    if not (adaptive and momentum):
        return None
    a, b = adaptive["optimizer"], momentum["optimizer"]
    d, half, n = m.paired(a, b)
    side = direction(d, half, n)
    return (
        "Adaptive methods generalize worse than well-tuned SGD with momentum (Wilson et al. 2017).",
        f"test accuracy of the best adaptive ({a}, lr {a_lr(adaptive)}) − the best momentum SGD ({b}, lr {a_lr(momentum)}), "
        f"both chosen on validation: {_paired_text(d, half, n)}",
        ("consistent" if side < 0 else "contradicted: the adaptive one is better" if side > 0 else "not observed: within the interval")
        + f" ({n} seeds)",
    )


def sam_generalizes_better(m: Measured) -> Claim:
    if "sam" not in m.task or m.sam_base not in m.task:
        return None
    sam, base = m.task["sam"], m.task[m.sam_base]
    d, half, n = m.paired("sam", m.sam_base)
    side = direction(d, half, n)
    return (
        "SAM seeks flat minima and generalizes better than its base optimizer (Foret et al. 2021).",
        f"test accuracy of sam (lr {a_lr(sam)}) − {m.sam_base} (lr {a_lr(base)}), each tuned: {_paired_text(d, half, n)}; "
        f"at twice the gradient cost ({_fmt(sam['wall_s_median'], 3)} s vs {_fmt(base['wall_s_median'], 3)} s a member)",
        ("consistent" if side > 0 else "contradicted: SAM is worse" if side < 0 else "not observed: within the interval") + f" ({n} seeds)",
    )


def a_lr(row: dict) -> str:
    return f"{row['lr']:g}" + (", at the grid's edge" if row["at_grid_edge"] else "")


CLAIMS = (adagrad_stalls, momentum_accelerates, adam_trains_faster, adaptive_generalizes_worse, sam_generalizes_better)


def claims(surface_rows: list[dict], table: list[dict], members: list[dict], sam_base: str) -> list[tuple[str, str, str]]:
    """Each claim this run has the optimizers to measure, in the order of ``CLAIMS``."""
    measured = Measured(surface_rows, table, members, sam_base)
    return [c for c in (claim(measured) for claim in CLAIMS) if c is not None]


def write_report(
    study_dir: Path, cfg: DictConfig, surface_rows: list[dict], table: list[dict], members: list[dict], sam_base: str, wall_s: float
) -> None:
    s = cfg.study
    versus = bool(table) and f"vs_{BASELINE}" in table[0]
    recipe = " ".join(s.get("recipe") or []) or "—"
    paired_with = f", each optimizer with tuned `{BASELINE}` paired by seed (members of one seed share its split and data order)"
    task = (
        f"Real task: recipe `{recipe}` ({members[0]['epochs'] if members else '—'} epochs); each optimizer's lr "
        f"chosen by best validation accuracy from "
        f"{list(s.lr_factors)} × its config's lr on seed(s) {list(s.tune_seeds)} (those runs never score the test split; an lr "
        f"whose loss stopped being finite counts as the worst), then seeds {list(s.seeds)} trained at that lr and compared on "
        f"test{paired_with if versus else ''}."
        if table
        else "Real task: not run (`study.task_optimizers=[]`)."
    )
    lines = [
        "# Optimizer study",
        "",
        f"{task} 2-D surfaces: {s.surface_steps} steps from the same start for every optimizer, lr chosen per optimizer and "
        f"surface (lowest final f) from the grid {list(s.lr_grid)}. Wall time {wall_s:.0f} s."
        + (" Members are in `members/<optimizer>/seed<k>/`, the lr candidates in `members/tune/`" if table else "")
        + f" (TensorBoard: `tensorboard --logdir {study_dir}`).",
        "",
        "## Claims and what this study measured",
        "",
        "| claim (source) | measured here | verdict |",
        "|---|---|---|",
    ]
    lines += [f"| {c} | {m} | {v} |" for c, m, v in claims(surface_rows, table, members, sam_base)]
    if table:
        key = f"epochs_to_train_loss_{LOSS_MARK:g}"
        lines += [
            "",
            "## Real task, each optimizer at its tuned lr, sorted by mean best validation accuracy",
            "",
            f"| optimizer | config lr | tuned lr (× config) | val acc at config lr → tuned (tuning seeds) | test acc (95% interval) | "
            f"{f'− tuned {BASELINE}, paired (points) | ' if versus else ''}epochs to train loss < {LOSS_MARK:g} | wall s |",
            "|---|---|---|---|---|" + ("---|" if versus else "") + "---|---|",
        ]
        for r in table:
            edge = ", edge" if r["at_grid_edge"] else ""
            gone = f"; diverged at {r['diverged_lrs']}" if r["diverged_lrs"] else ""
            at_config = "—" if r["tune_val_acc_config_lr"] == "" else f"{r['tune_val_acc_config_lr']:.4f}"
            vs = ""
            if versus:
                d, half = r[f"vs_{BASELINE}"], r[f"vs_{BASELINE}_ci95"]
                vs = " — |" if r["optimizer"] == BASELINE else f" {d * 100:+.1f} ± {half * 100:.1f} |"
            lines.append(
                f"| {r['optimizer']} | {r['config_lr']:g} | {r['lr']:g} ({r['lr_factor']:g}×{edge}{gone}) | "
                f"{at_config} → {r['tune_val_acc']:.4f} | {r['test_acc_mean'] * 100:.1f}% ± "
                f"{r['test_acc_ci95'] * 100:.1f} |{vs} {_fmt(r[key])} | {_fmt(r['wall_s_median'], 3)} |"
            )
        lines += [
            "",
            "An lr at the grid's edge may not be the best one: widen `study.lr_factors` on that side.",
            "",
            "![lr tuning](figures/lr_tuning.png)",
            "",
            "![test accuracy](figures/test_accuracy.png)",
            "",
        ]
        if versus and len(table) > 1:
            lines += [f"![each against tuned {BASELINE}](figures/test_accuracy_vs_{BASELINE}.png)", ""]
        lines += ["![learning curves](figures/learning_curves.png)", ""]
    lines += [
        "## 2-D surfaces",
        "",
        "Steps to f < 0.01 count until f stays below it. A stall: ending ≥ 0.05 from a minimum while moving too slowly to reach it "
        "in another budget; the step given is where it slowed to a crawl. End effective lr: median |Δp|/|∇f| over the last tenth "
        "of the steps, as a multiple of the nominal lr (SGD: 1; below 1: the optimizer has shrunk its steps).",
        "",
        "| surface | optimizer | tuned lr | final f | steps to f < 0.01 | stall step | end effective lr ÷ lr |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in surface_rows:
        lines.append(
            f"| {r['surface']} | {r['optimizer']} | {r['lr']:g} | {_fmt(r['final_f'], 3)} | {_fmt(r['steps_to_converge'])} | "
            f"{_fmt(r['stall_step'])} | {_fmt(r['end_eff_lr_ratio'], 2)} |"
        )
    lines += (
        [""] + [f"![{n}](figures/trajectories_{n}.png)\n" for n in s.surfaces] + ["![f along the paths](figures/surface_losses.png)", ""]
    )
    lines += [
        "Files: "
        + ("`results.csv` (one row per member), `summary.csv` (per optimizer), `tuning.csv` (every lr candidate), " if table else "")
        + "`surfaces.csv`, `figures/` (PDF + PNG)."
    ]
    write_text_atomic(study_dir / "report.md", "\n".join(lines) + "\n")
