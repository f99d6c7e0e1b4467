"""A grid of configurations over seeds (``study=grid``): every combination of ``study.grid``'s
values — a config group's options or any config key's values — trained once per seed as a member
run. ``results.csv`` (a row per run), ``summary.csv`` (per combination: mean and 95% t-interval over
seeds), figures and ``report.md``, in which the combination best on the VALIDATION metric is marked:
model selection never reads the test split, whose numbers are shown beside it as information only.

A new grid needs only a YAML file next to ``configs/study/grid.yaml`` (docs/studies.md, "Your own
grid"). Everything is checked before the first member starts: a bad grid ends with one line and
leaves nothing behind."""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import numbers
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, ListConfig, OmegaConf

from core.errors import ConfigError
from core.files import write_text_atomic
from experiments.results import SELECTION_KEYS
from experiments.studies.common import Clock, finish, log, member_overrides
from experiments.studies.members import check_seeds, run_members, sorted_bars
from experiments.summary import MINIMIZED
from numerics.intervals import direction, interval, paired

TIE = 1e-6  # metrics are float32: closer than this is the same value
SHAPE = (
    "a non-empty mapping of config group or key → list of values, e.g. study.grid='{optimizer: [sgd, adam], model.hidden: [[64], [256]]}'"
)


def override_value(v: Any) -> str:
    """A value as Hydra's override grammar writes it (what the member's override and its name say)."""
    from hydra_plugins.dlf_optuna_sweeper.optuna_sweeper import format_value

    if isinstance(v, (DictConfig, ListConfig)):
        v = OmegaConf.to_container(v, resolve=True)
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, list):
        return "[" + ",".join(override_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ",".join(f"{k}:{override_value(x)}" for k, x in v.items()) + "}"
    return format_value(v)


def _shown(v: Any) -> str:
    return override_value(v) if v is not None else "null"


def axes_of(s: DictConfig) -> dict[str, list]:
    """``study.grid`` (or the example grid when it is null), checked for shape: key → its values."""
    grid = s.grid if s.grid is not None else OmegaConf.select(s, "example_grid")
    if not isinstance(grid, DictConfig) or not grid:
        raise ConfigError(f"study.grid={_shown(grid)}: must be {SHAPE}")
    axes = {}
    for key, values in grid.items():
        bare = str(key).lstrip("+")
        if not bare or bare.replace("/", ".").split(".")[0] in ("study", "hydra"):
            raise ConfigError(
                f"study.grid.{key}: study and hydra keys cannot be axes; the grid varies the members' config (model, data, ...)"
            )
        if bare == "seed":
            raise ConfigError("study.grid.seed: the seeds are study.seeds (every combination is trained once per seed)")
        if not isinstance(values, ListConfig) or not values:
            one = f" (one value: [{_shown(values)}])" if not isinstance(values, ListConfig) else ""
            raise ConfigError(f"study.grid.{key}={_shown(values)}: must be a non-empty list of values{one}")
        shown = [override_value(v) for v in values]
        repeated = sorted({v for v in shown if shown.count(v) > 1})
        if repeated:
            raise ConfigError(f"study.grid.{key}={_shown(values)}: repeats {', '.join(repeated)}; each value once")
        axes[str(key)] = list(OmegaConf.to_container(values, resolve=True))
    return axes


def check(s: DictConfig, axes: dict[str, list], groups: set[str]) -> None:
    """Everything a member run would refuse, refused before the first one starts."""
    from hydra.core.global_hydra import GlobalHydra

    check_seeds(s.seeds)
    if s.epochs is not None and (not isinstance(s.epochs, int) or isinstance(s.epochs, bool) or s.epochs < 1):
        raise ConfigError(f"study.epochs={s.epochs}: must be an integer >= 1, or null for the config's own trainer.max_epochs")
    given = {o.lstrip("+~").split("=", 1)[0]: o for o in member_overrides() if not o.startswith(("study=", "callbacks.progress="))}
    if "trainer.max_epochs" in given and s.epochs is not None:
        raise ConfigError(
            f"{given['trainer.max_epochs']} with study.epochs={s.epochs}: study.epochs sets every member's trainer.max_epochs; "
            "give study.epochs instead (null: the config's own)"
        )
    for key, values in axes.items():
        bare = key.lstrip("+")
        if bare in given:
            raise ConfigError(
                f"study.grid.{key}: also given on the command line ({given[bare]}), which would override the grid's values in "
                "every member; drop one of them"
            )
        if bare == "trainer.max_epochs" and s.epochs is not None:
            raise ConfigError(
                f"study.grid.trainer.max_epochs with study.epochs={s.epochs}: study.epochs sets every member's; set study.epochs=null"
            )
        if bare in groups:
            options = GlobalHydra.instance().config_loader().get_group_options(bare)
            unknown = [override_value(v) for v in values if v not in options]
            if unknown:
                raise ConfigError(f"study.grid.{key}={_shown(values)}: unknown {bare} {', '.join(unknown)}; valid: {', '.join(options)}")


def combinations(axes: dict[str, list]) -> dict[str, dict[str, Any]]:
    """Member name → {axis: value}, in the grid's order (the first axis varies slowest)."""
    out: dict[str, dict[str, Any]] = {}
    for combo in itertools.product(*axes.values()):
        values = dict(zip(axes, combo))
        name = ",".join(f"{k.lstrip('+')}={override_value(v)}" for k, v in values.items()).replace("/", "_").replace(" ", "")
        if len(name) > 150:  # a directory name: long lists of values get a short, still unique one
            name = f"{name[:140]}-{hashlib.sha1(name.encode()).hexdigest()[:8]}"
        if name in out:
            raise ConfigError(
                f"study.grid: two combinations share the member name {name!r} ('/' and spaces are dropped); give distinct values"
            )
        out[name] = values
    return out


def overrides(values: dict[str, Any]) -> list[str]:
    return [f"{k}={override_value(v)}" for k, v in values.items()]


def check_members(s: DictConfig, grid: dict[str, dict[str, Any]], groups: set[str]) -> None:
    """Compose every member's config (as ``run_members`` will) and run the checks a run starts with."""
    from experiments.build import check_components
    from experiments.errors import config_error_message
    from experiments.hydra_callbacks import Composer
    from experiments.preflight import preflight

    composer = Composer("train", groups)  # composes once per choice of config groups
    epochs = [f"trainer.max_epochs={s.epochs}"] if s.epochs is not None else []
    for values in grid.values():
        mine = overrides(values)
        try:
            cfg = composer([*s.recipe, *mine, *member_overrides(*epochs, f"seed={s.seeds[0]}")])
            preflight(cfg)
            check_components(cfg)
            continue
        except ConfigError as exc:
            message = str(exc)
        except Exception as exc:  # noqa: BLE001 — composition errors (unknown option or key) become one line
            message = config_error_message(exc)
            if message is None:
                raise
        named = [o for o in mine if message.lstrip("+").startswith(o.lstrip("+").split("=", 1)[0])]
        others = [o for o in mine if o not in named[:1]]
        where = f"with {' '.join(others)}: " if others else ""
        raise ConfigError(f"study.grid: {where}{message}")


def selection_key(records: list[dict]) -> str | None:
    """The validation headline every member has (val/acc_best for classification), or None."""
    return next((k for k in SELECTION_KEYS if all(r.get(k) is not None for r in records)), None)


def metric_name(key: str | None) -> str:
    return key.split("/", 1)[1].removesuffix("_best") if key else "acc"


def lower_is_better(key: str | None) -> bool:
    return any(m in metric_name(key) for m in MINIMIZED)


def tidy(study_dir: Path, rows: list[dict], grid: dict[str, dict[str, Any]]) -> tuple[list[dict], str | None]:
    """``run_members``' rows with each axis's value and the member's validation metric added."""
    records = [json.loads((study_dir / "members" / r["member"] / f"seed{r['seed']}" / "metrics.json").read_text()) for r in rows]
    key = selection_key(records)
    val = f"val_{metric_name(key)}"
    out = []
    for r, record in zip(rows, records):
        values = {k.lstrip("+"): override_value(v) for k, v in grid[r["member"]].items()}
        tests = {k: v for k, v in r.items() if k.startswith("test_")}
        rest = {k: r[k] for k in ("model", "params", "epochs", "wall_s") if k not in values}
        out.append({"member": r["member"], **values, "seed": r["seed"], val: record.get(key, "") if key else "", **tests, **rest})
    return out, key


def summarize(rows: list[dict], grid: dict[str, dict[str, Any]], key: str | None) -> list[dict]:
    """One row per combination, best on validation first; ``selected`` marks the best one."""
    m = metric_name(key)
    table = []
    for name, values in grid.items():
        ms = [r for r in rows if r["member"] == name]
        val, val_std, val_half = interval(r[f"val_{m}"] for r in ms) if key else ("", "", "")
        tested = [r[f"test_{m}"] for r in ms if r.get(f"test_{m}") not in (None, "")]
        test, _, test_half = interval(tested) if len(tested) == len(ms) else ("", "", "")
        table.append(
            {
                "member": name,
                **{k.lstrip("+"): override_value(v) for k, v in values.items()},
                "seeds": len(ms),
                f"val_{m}_mean": val,
                f"val_{m}_std": val_std,
                f"val_{m}_ci95": val_half,
                f"test_{m}_mean": test,
                f"test_{m}_ci95": test_half,
                "epochs_mean": sum(r["epochs"] for r in ms) / len(ms),
                "wall_s_mean": sum(r["wall_s"] for r in ms) / len(ms),
                "selected": False,
            }
        )
    if key:
        sign = 1 if lower_is_better(key) else -1
        table.sort(key=lambda r: round(sign * r[f"val_{m}_mean"], 6))  # stable: ties (float32 noise aside) keep the grid's order
        table[0]["selected"] = True
    return table


def _numeric(values: list) -> bool:
    return len(values) > 1 and all(isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v) for v in values)


def line_figure(table: list[dict], axes: dict[str, list], axis: str, key: str, folder: Path, writer) -> None:
    """The validation metric against the one numeric axis (one line per combination of the other
    axes), with its 95% interval; the test metric dashed, as information."""
    from callbacks.plot_style import new_figure, palette, save_figure

    m = metric_name(key)
    scale = 100 if m == "acc" else 1
    bare = axis.lstrip("+")
    others = [k.lstrip("+") for k in axes if k != axis]
    series = list(dict.fromkeys(tuple(r[k] for k in others) for r in table))  # one line per combination of the other axes
    fig, ax_ = new_figure(1, 1, width=5.2, height=3.6)
    ax = ax_[0, 0]
    for group, color in zip(series, palette(len(series))):
        rs = sorted((r for r in table if tuple(r[k] for k in others) == group), key=lambda r: float(r[bare]))
        x = [float(r[bare]) for r in rs]
        mean = [r[f"val_{m}_mean"] * scale for r in rs]
        half = [r[f"val_{m}_ci95"] * scale for r in rs]
        label = " ".join(f"{k}={v}" for k, v in zip(others, group)) or "validation"
        ax.plot(x, mean, marker="o", color=color, label=label)
        ax.fill_between(x, [a - b for a, b in zip(mean, half)], [a + b for a, b in zip(mean, half)], color=color, alpha=0.2, linewidth=0)
        if all(r[f"test_{m}_mean"] != "" for r in rs):
            ax.plot(x, [r[f"test_{m}_mean"] * scale for r in rs], linestyle="--", color=color, linewidth=1, alpha=0.8)
    best = next(r for r in table if r["selected"])
    ax.scatter([float(best[bare])], [best[f"val_{m}_mean"] * scale], s=90, facecolors="none", edgecolors="black", zorder=3)
    xs = [float(v) for v in axes[axis]]
    if min(xs) > 0 and max(xs) / min(xs) >= 20:
        ax.set_xscale("log")
    if len(xs) <= 8:  # the grid's own values as the ticks
        ax.set_xticks(xs, [override_value(v) for v in axes[axis]])
        ax.minorticks_off()
    ax.set_xlabel(bare)
    ax.set_ylabel(f"validation {m}{' (%)' if scale == 100 else ''}")
    ax.set_title("mean and 95% interval over seeds; dashed: test (information); ○ selected", fontsize=8)
    if others:
        ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    save_figure(fig, folder, f"vs_{bare.replace('.', '_').replace('/', '_')}", writer)


def show(mean: float, half: float) -> str:
    return f"{mean:.4f} ± {half:.4f}"


def write_report(
    study_dir: Path, s: DictConfig, axes: dict[str, list], rows: list[dict], table: list[dict], key: str | None, wall_s: float
) -> None:
    m = metric_name(key)
    names = [k.lstrip("+") for k in axes]
    source = "`study.grid`" if s.grid is not None else "The example grid (`study.example_grid`; `study.grid` is null)"
    sizes = f"{' × '.join(str(len(v)) for v in axes.values())} = " if len(axes) > 1 else ""

    def combo(r: dict) -> str:
        return " ".join(f"{k}={r[k]}" for k in names)

    epochs = f"{s.epochs} epochs" if s.epochs is not None else "the config's own epochs"
    lines = [
        f"# Grid: {' × '.join(names)}",
        "",
        f"{source}: {sizes}{len(table)} combination{'s' if len(table) > 1 else ''}, each trained with seeds "
        f"{list(s.seeds)}; every member is recipe `{' '.join(s.recipe) or '(none)'}`, {epochs}, then its combination's values, then "
        f"the command line's overrides. Mean ± half-width of the 95% t-interval over seeds. Wall time {wall_s:.0f} s.",
        "",
    ]
    if key:
        best = table[0]
        better = "lowest" if lower_is_better(key) else "highest"
        tied = [r for r in table[1:] if abs(r[f"val_{m}_mean"] - best[f"val_{m}_mean"]) < TIE]
        lines += [
            f"**Selected on validation: `{combo(best)}`** — the {better} mean `{key}` (each run's best validation {m} over "
            f"its epochs): {show(best[f'val_{m}_mean'], best[f'val_{m}_ci95'])}"
            + (f", tied with {', '.join(f'`{combo(r)}`' for r in tied)} (the first in the grid's order is selected)" if tied else "")
            + ". Model selection reads only the validation split; the test numbers took no part in it and are shown as information.",
        ]
        if len(table) > 1 and not tied:
            second = table[1]
            of = lambda r: {x["seed"]: x[f"val_{m}"] for x in rows if x["member"] == r["member"]}  # noqa: E731
            diff, half, k = paired(of(best), of(second))  # the combinations of one seed share its split and data order
            lines += [
                "",
                f"Runner-up `{combo(second)}` at {show(second[f'val_{m}_mean'], second[f'val_{m}_ci95'])}; paired by seed, "
                f"the selected one minus it is {diff:+.4f} ± {half:.4f}: "
                + (
                    "one seed in common: no interval, nothing decided."
                    if k < 2
                    else f"the 95% interval of the difference does not hold zero ({k} seeds)."
                    if direction(diff, half, k)
                    else f"the 95% interval of the difference holds zero (within noise at {k} seeds)."
                ),
            ]
        tested = [r for r in table if r[f"test_{m}_mean"] != ""]
        if tested and best[f"test_{m}_mean"] != "":
            top = (min if lower_is_better(key) else max)(tested, key=lambda r: r[f"test_{m}_mean"])
            same = abs(top[f"test_{m}_mean"] - best[f"test_{m}_mean"]) < TIE
            lines += [
                "",
                "For information, known only afterwards: "
                + (
                    f"the selected combination is also the best (or tied best) on the test split ({best[f'test_{m}_mean']:.4f})."
                    if same
                    else f"the best on the test split is `{combo(top)}` ({top[f'test_{m}_mean']:.4f}; the selected one: "
                    f"{best[f'test_{m}_mean']:.4f})."
                ),
            ]
    else:
        lines += ["No validation metric in every member (a run without a validation split): no combination is selected."]
    lines += [
        "",
        f"| {' | '.join(names)} | val {m} (95% CI) | test {m} (95% CI, information) | epochs | wall s | |",
        "|" + "---|" * (len(names) + 5),
    ]
    for r in table:
        val = show(r[f"val_{m}_mean"], r[f"val_{m}_ci95"]) if key else "—"
        test = show(r[f"test_{m}_mean"], r[f"test_{m}_ci95"]) if r[f"test_{m}_mean"] != "" else "—"
        mark = "**← selected (best on validation)**" if r["selected"] else ""
        lines.append(
            f"| {' | '.join(f'`{r[k]}`' for k in names)} | {val} | {test} | {r['epochs_mean']:.0f} | {r['wall_s_mean']:.1f} | {mark} |"
        )
    lines += ["", "![combinations](figures/combinations.png)", ""]
    numeric = [k for k, v in axes.items() if _numeric(v)]
    if key and len(numeric) == 1:
        stem = f"vs_{numeric[0].lstrip('+').replace('.', '_').replace('/', '_')}"
        lines += [f"![against {numeric[0].lstrip('+')}](figures/{stem}.png)", ""]
    lines += [
        "Files: `results.csv` (one row per run), `summary.csv` (one per combination), `figures/` (PDF + PNG, also in `tensorboard/`), "
        "runs in `members/<combination>/seed<k>/`.",
    ]
    write_text_atomic(study_dir / "report.md", "\n".join(lines) + "\n")


def run(cfg: DictConfig, study_dir: Path) -> dict:
    s, clock = cfg.study, Clock()
    groups = {g for g in HydraConfig.get().runtime.choices if not g.startswith("hydra")}
    axes = axes_of(s)
    check(s, axes, groups)
    grid = combinations(axes)
    check_members(s, grid, groups)
    log.info(f"grid: {len(grid)} combinations × {len(s.seeds)} seeds = {len(grid) * len(s.seeds)} member runs")
    rows = run_members(s, study_dir, list(grid), lambda n: overrides(grid[n]), lambda n: s.epochs)
    rows, key = tidy(study_dir, rows, grid)
    table = summarize(rows, grid, key)
    m = metric_name(key)

    def draw(writer) -> None:
        if not key:
            return
        keys = [k.lstrip("+") for k in axes]
        short = [k.rsplit(".", 1)[-1] for k in keys]  # dropout for regularization.dropout, unless two axes end alike
        shown = short if len(set(short)) == len(short) else keys
        labels = [{**r, "label": ", ".join(f"{n}={r[k]}" for n, k in zip(shown, keys))} for r in table]
        sorted_bars(
            labels,
            "label",
            f"val_{m}_mean",
            f"val_{m}_ci95",
            f"validation {m}{' (%)' if m == 'acc' else ''}, mean and 95% interval over {len(s.seeds)} seeds",
            study_dir / "figures",
            "combinations",
            writer,
            percent=m == "acc",
        )
        numeric = [k for k, v in axes.items() if _numeric(v)]
        if len(numeric) == 1:
            line_figure(table, axes, numeric[0], key, study_dir / "figures", writer)

    finish(study_dir, clock, rows, table, draw, lambda wall_s: write_report(study_dir, s, axes, rows, table, key, wall_s))
    best = table[0] if key else None
    return {"best": best["member"], f"val_{m}_mean": best[f"val_{m}_mean"]} if best else {}
