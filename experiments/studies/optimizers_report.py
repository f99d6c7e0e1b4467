"""report.md of the optimizer study: each textbook claim beside what this study measured."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Optional

from omegaconf import DictConfig

from core.files import write_text_atomic
from experiments.studies.optimizer_families import ADAM_TYPE, ADAPTIVE, MOMENTUM, SGD_TYPE


def _fmt(v, digits: int = 4) -> str:
    if v in ("", None) or (isinstance(v, float) and math.isnan(v)):
        return "—"
    return f"{v:.{digits}g}" if isinstance(v, float) else str(v)


Claim = Optional[tuple[str, str, str]]  # (claim and source, what was measured, verdict); None: not measured in this run


class Measured:
    """The study's numbers, by surface and optimizer (``surfaces``) and by optimizer (``table``)."""

    def __init__(self, surface_rows: list[dict], table: list[dict]):
        self.rows = surface_rows
        self.surface = {(r["surface"], r["optimizer"]): r for r in surface_rows}
        self.task = {r["optimizer"]: r for r in table}

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
    key = "epochs_to_train_loss_0.05"
    adam, sgdm = m.best(ADAM_TYPE, key, lowest=True), m.best(SGD_TYPE, key, lowest=True)
    if not (adam and sgdm):
        return None
    return (
        "Adam-type methods drive the training loss down faster than SGD (Kingma & Ba 2015).",
        f"median epochs to train loss < 0.05: fastest Adam-type {adam['optimizer']} {_fmt(adam[key])}, fastest SGD-type "
        f"{sgdm['optimizer']} {_fmt(sgdm[key])}",
        "consistent" if adam[key] < sgdm[key] else "not observed",
    )


def adaptive_generalizes_no_better(m: Measured) -> Claim:
    adaptive, momentum = m.best(ADAPTIVE, "val_acc_median"), m.best(MOMENTUM, "val_acc_median")
    if not (adaptive and momentum):
        return None
    a, b = adaptive["val_acc_median"], momentum["val_acc_median"]
    spread = max(r["val_acc_max"] - r["val_acc_min"] for r in (adaptive, momentum))
    return (
        "Adaptive methods generalize no better than well-tuned SGD with momentum (Wilson et al. 2017).",
        f"median val accuracy: best adaptive {adaptive['optimizer']} {a:.4f}, best momentum SGD {momentum['optimizer']} {b:.4f} "
        f"(seed range up to {spread:.4f}; each at its config lr, not tuned on this task)",
        "consistent" if a <= b + spread else "not observed",
    )


def sam_generalizes_better(m: Measured) -> Claim:
    if "sam" not in m.task or "momentum" not in m.task:
        return None
    sam, base = m.task["sam"], m.task["momentum"]
    return (
        "SAM seeks flat minima and generalizes better than its base optimizer (Foret et al. 2021).",
        f"median val accuracy: sam {sam['val_acc_median']:.4f} vs momentum {base['val_acc_median']:.4f}, at twice the gradient cost "
        f"({_fmt(sam['wall_s_median'], 3)} s vs {_fmt(base['wall_s_median'], 3)} s a run)",
        "consistent" if sam["val_acc_median"] > base["val_acc_median"] else "not observed",
    )


CLAIMS = (adagrad_stalls, momentum_accelerates, adam_trains_faster, adaptive_generalizes_no_better, sam_generalizes_better)


def claims(surface_rows: list[dict], table: list[dict]) -> list[tuple[str, str, str]]:
    """Each claim this run has the optimizers to measure, in the order of ``CLAIMS``."""
    measured = Measured(surface_rows, table)
    return [c for c in (claim(measured) for claim in CLAIMS) if c is not None]


def write_report(study_dir: Path, cfg: DictConfig, surface_rows: list[dict], table: list[dict], wall_s: float) -> None:
    s = cfg.study
    lines = [
        "# Optimizer study",
        "",
        f"Real task: model `{cfg.model.name}` on `{cfg.data.name}`, {cfg.trainer.max_epochs} epochs, batch {cfg.data.batch_size}, "
        f"seeds {list(s.seeds)}, each optimizer with the lr of its own config. 2-D surfaces: {s.surface_steps} steps from the "
        f"same start for every optimizer, lr chosen per optimizer and surface (lowest final f) from the grid {list(s.lr_grid)}. "
        f"Wall time {wall_s:.0f} s. Members are in `members/<optimizer>/seed<k>/` (TensorBoard: `tensorboard --logdir {study_dir}`).",
        "",
        "## Claims and what this study measured",
        "",
        "| claim (source) | measured here | verdict |",
        "|---|---|---|",
    ]
    lines += [f"| {c} | {m} | {v} |" for c, m, v in claims(surface_rows, table)]
    lines += [
        "",
        "## Real task, sorted by median val accuracy after the last epoch",
        "",
        "| optimizer | lr | val acc median [min, max] | best val acc (median) | test acc (median) | final train loss | epochs to "
        "train loss < 0.05 | wall s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in table:
        lines.append(
            f"| {r['optimizer']} | {_fmt(r['lr'])} | {r['val_acc_median']:.4f} [{r['val_acc_min']:.4f}, {r['val_acc_max']:.4f}] | "
            f"{_fmt(r['val_acc_best_median'])} | {_fmt(r['test_acc_median'])} | {_fmt(r['train_loss_median'], 3)} | "
            f"{_fmt(r['epochs_to_train_loss_0.05'])} | {_fmt(r['wall_s_median'], 3)} |"
        )
    lines += ["", "![learning curves](figures/learning_curves.png)", "", "![final val accuracy](figures/final_val_accuracy.png)", ""]
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
    lines += ["Files: `results.csv` (one row per member), `summary.csv` (per optimizer), `surfaces.csv`, `figures/` (PDF + PNG)."]
    write_text_atomic(study_dir / "report.md", "\n".join(lines) + "\n")
