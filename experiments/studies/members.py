"""Studies made of named members (a name → the overrides that make it) trained over seeds with a
shared recipe: running them (resumably), scoring a finished member on its clean training split,
summarizing over seeds, and the sorted bar chart every such study draws."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from core.errors import ConfigError
from core.files import write_json_atomic
from experiments.results import SELECTION_KEYS
from experiments.studies.common import DIVERGED, MEMBER, log, member_overrides


def check_seeds(seeds, key: str = "study.seeds", at_least: int = 1, distinct: bool = False) -> None:
    """A non-empty list of integers >= 0; ``distinct``: none repeated; ``at_least``: that many seeds
    (a 95% interval over seeds needs 2)."""
    listed = OmegaConf.is_list(seeds) or isinstance(seeds, (list, tuple))
    if not listed or not seeds or any(isinstance(x, bool) or not isinstance(x, int) or x < 0 for x in seeds):
        raise ConfigError(f"{key}={list(seeds) if listed else seeds}: must be a non-empty list of integers >= 0")
    if distinct and len(set(seeds)) < len(seeds):
        raise ConfigError(f"{key}={list(seeds)}: a seed is repeated; each must be distinct")
    if len(seeds) < at_least:
        raise ConfigError(f"{key}={list(seeds)}: the 95% intervals over seeds need at least {at_least} seeds")


def chosen(s: DictConfig) -> list[str]:
    """``study.only`` (checked against ``study.members``) or every member."""
    unknown = [n for n in (s.only or []) if n not in s.members]
    if unknown or (s.only is not None and not s.only):
        raise ConfigError(f"study.only={list(s.only)}: unknown or empty {unknown}; members: {', '.join(s.members)}")
    return list(s.only) if s.only else list(s.members)


def run_members(
    s: DictConfig,
    study_dir: Path,
    names: list[str],
    overrides_of,
    epochs_of,
    score_train: bool = False,
    also: Sequence = (),
    may_diverge: bool = False,
) -> list[dict]:
    """Train every (member, seed) in ``study_dir/members/<name>/seed<k>`` (finished ones are kept):
    ``s.recipe`` (if any) + the member's overrides + the command line's + epochs (unless None) and seed. One row each.
    ``also``: further runs (launch ``Unit``s, e.g. a scoring classifier) trained beside them, with no row.
    ``may_diverge``: the members are a search's candidates; one whose loss stops being finite is
    finished with the row ``{"member", "seed", "diverged": why}`` instead of failing the study."""
    from experiments.studies.launch import Unit, run_units

    total = len(names) * len(s.seeds)
    units, fits = [], []
    for name in names:
        epochs = epochs_of(name)  # None: the config's own trainer.max_epochs
        common = [*(s.get("recipe") or []), *overrides_of(name), *member_overrides(*([f"trainer.max_epochs={epochs}"] if epochs else []))]
        mine = [
            Unit(f"{name}/seed{seed}", study_dir / "members" / name / f"seed{seed}", (*common, f"seed={seed}"), may_diverge)
            for seed in s.seeds
        ]
        units += mine
        record_fit_members(study_dir / "members" / name, mine)
        # a search's candidates train one by one: in a seeds fit, one seed's divergence would end the others
        fit = None if may_diverge else one_fit(s, name, common, [u for u in mine if not u.done()], study_dir / "members" / name)
        if fit is not None:
            fits.append((fit, mine))
    grouped = {u for _, mine in fits for u in mine}
    made: dict[str, dict] = {}

    def finished(unit: Unit, ran: bool) -> None:  # each member as it finishes (kept ones first), whatever the launcher
        if unit in also:
            log.info(f"{unit.label}: {'trained' if ran else 'trained earlier, kept'}")
            return
        for fit, mine in fits:
            if unit == fit:  # the seeds trained together: each is now a run of its own, as if trained alone
                record_fit_members(fit.member_dir.parent, mine)
                for one in mine:
                    if one.label not in made and one.done():
                        finished(one, ran)
                return
        name, seed = unit.label.rsplit("/seed", 1)
        if unit.diverged():
            made[unit.label] = {
                "member": name,
                "seed": int(seed),
                "diverged": json.loads((unit.member_dir / DIVERGED).read_text())["error"],
            }
            log.info(f"[{len(made)}/{total}] {name} seed {seed}: diverged{'' if ran else ' (earlier, kept)'}")
            return
        record = json.loads((unit.member_dir / "metrics.json").read_text())
        tests = {k.replace("/", "_"): v for k, v in record.items() if k.startswith("test/")}  # test_acc, test_loss, test_mse, ...
        row = {
            "member": name,
            "model": record["model"],
            "seed": int(seed),
            **tests,
            "params": record["params"],
            "epochs": record["epochs"],
            "wall_s": record["wall_s"],
        }
        if score_train:
            row["train_acc"] = clean_train_accuracy(unit.member_dir)
        made[unit.label] = row
        shown = " ".join(f"{k.replace('_', '/', 1)} {v:.4f}" for k, v in tests.items() if k != "test_loss")
        if not tests:  # run_test=false: what it is chosen by
            shown = " ".join(f"{k} {record[k]:.4f}" for k in SELECTION_KEYS if record.get(k) is not None)
        log.info(
            f"[{len(made)}/{total}] {name} seed {seed}: {shown}"
            + (f" train acc {row['train_acc']:.4f}" if score_train else "")
            + f" ({record['wall_s']:.1f} s){'' if ran else ' (finished earlier, kept)'}"
        )

    single = [u for u in units if u not in grouped or u.done()]
    run_units(s, [*also, *(fit for fit, _ in fits), *single], study_dir / "logs", finished)
    rows = [made[u.label] for u in units]
    return rows


def one_fit(s: DictConfig, name: str, common: list[str], todo: list, folder: Path):
    """The seeds of member ``name`` still to train as one ``seeds=[...]`` fit (a launch ``Unit`` whose
    members land in ``<folder>/seed<k>``, where each would have trained alone), or None: one seed
    left, ``study.one_fit=false``, or a config the fit cannot honour (said in the log)."""
    from hydra import compose

    from experiments import seeds as one_fit_rules
    from experiments.build import build_datamodule
    from experiments.studies.launch import Unit

    if len(todo) < 2 or not s.get("one_fit", True):
        return None
    seeds = [int(u.label.rsplit("/seed", 1)[1]) for u in todo]
    common = [o for o in common if o.lstrip("+~").split("=", 1)[0] != "seed"]  # each member's seed is its own
    overrides = (*common, f"seeds=[{','.join(map(str, seeds))}]", "members_dir=..")
    try:
        cfg = compose(config_name="train", overrides=list(overrides))
        one_fit_rules.check_seeds(cfg)
        if cfg.data.loader == "auto":
            build_datamodule(cfg).check_members()  # a training split above data.device_limit_mb stays in host memory
    except ConfigError as exc:
        log.info(f"{name}: its seeds train one after another ({exc})")
        return None
    together = f"fit_seeds{'-'.join(map(str, seeds))}"  # not seed*: the members' own directories are seed<k>
    return Unit(f"{name}/{together}", folder / together, overrides)


def record_fit_members(folder: Path, units: list) -> None:
    """A member a finished fit trained records the overrides it stands for (``.member.json``, what
    ``study.resume`` checks a kept member by), also when the study process did not see the fit end
    (a detached study, a study stopped meanwhile): the fit's own overrides with its seed for its seeds."""
    for fit_dir in sorted(folder.glob("fit_seeds*")):
        if not ((fit_dir / "metrics.json").is_file() and (fit_dir / MEMBER).is_file()):
            continue
        common = [o for o in json.loads((fit_dir / MEMBER).read_text()) if not o.startswith(("seeds=", "members_dir="))]
        trained = fit_dir.name.removeprefix("fit_seeds").split("-")
        for unit in units:
            seed = unit.label.rsplit("/seed", 1)[1]
            if seed not in trained or not unit.done() or (unit.member_dir / MEMBER).is_file():
                continue
            same = common == [o for o in unit.overrides[:-1] if o.lstrip("+~").split("=", 1)[0] != "seed"]
            # the unit's own overrides when the fit was this command's; else the fit's, which study.resume then refuses
            write_json_atomic(unit.member_dir / MEMBER, list(unit.overrides) if same else [*common, f"seed={seed}"])


def load_member(member_dir: Path):
    """(record, module with the tested checkpoint's weights in eval mode, its DataModule set up)."""
    from experiments.build import build_datamodule, build_module

    record = json.loads((member_dir / "metrics.json").read_text())
    cfg = OmegaConf.load(member_dir / ".hydra" / "config.yaml")
    dm = build_datamodule(cfg)
    module = build_module(cfg, dm)
    state = torch.load(member_dir / record["test_checkpoint"], map_location="cpu", weights_only=True)["state_dict"]
    module.load_state_dict(state)
    module.eval()
    dm.setup()
    return record, module, dm


@torch.no_grad()
def clean_train_accuracy(member_dir: Path) -> float:
    """Accuracy of the member's tested checkpoint on its own training split, without augmentation,
    noise or mixing (what the generalization gap is measured from)."""
    record = json.loads((member_dir / "metrics.json").read_text())
    if "train_acc_clean" in record:
        return record["train_acc_clean"]
    record, module, dm = load_member(member_dir)
    x, y = dm.tensors("train")
    acc = float((torch.cat([module(x[i : i + 4096]) for i in range(0, len(x), 4096)]).argmax(1) == y).float().mean())
    record["train_acc_clean"] = acc  # cached beside the run's metrics, so a resumed study does not redo it
    write_json_atomic(member_dir / "metrics.json", record)
    return acc


def _bar_axes(table: list[dict], value: str, err: str, scale: float):
    """The rows sorted by ``value``, a figure of one axis sized to them, their positions, values and errors (× ``scale``)."""
    from callbacks.plot_style import new_figure

    rows = sorted(table, key=lambda r: r[value])
    fig, axes = new_figure(1, 1, width=6.0, height=0.38 * len(rows) + 1.3)
    vals = np.array([r[value] * scale for r in rows])
    errs = np.array([r[err] * scale for r in rows])
    return rows, fig, axes[0, 0], np.arange(len(rows)), vals, errs


def sorted_bars(
    table: list[dict],
    label: str,
    value: str,
    err: str,
    xlabel: str,
    folder: Path,
    stem: str,
    writer,
    reference: Optional[str] = None,
    reference_label: str = "published",
    percent: bool = True,
    suffix: str = "%",
) -> None:
    """Horizontal bars of ``value`` per row, sorted, ± ``err`` whiskers, the value (× 100 with
    ``percent``, then ``suffix``) annotated right of the whisker and of the ``reference`` marker."""
    from callbacks.plot_style import palette, save_figure

    scale = 100 if percent else 1
    rows, fig, ax, y, vals, errs = _bar_axes(table, value, err, scale)
    ours, ref = palette(2)
    ax.barh(y, vals, xerr=errs, color=ours, capsize=3, height=0.6, label="measured")
    marks = [(i, r[reference] * scale) for i, r in enumerate(rows) if reference and r.get(reference) not in (None, "")]
    if marks:
        ax.scatter([m for _, m in marks], [i for i, _ in marks], marker="D", color=ref, zorder=3, label=reference_label)
        ax.legend(loc="lower right", fontsize=8)
    refs = {i: m for i, m in marks}
    span = float(max(vals + errs)) if len(vals) else 1.0
    for i, (v, e) in enumerate(zip(vals, errs)):
        ax.text(max(v + e, refs.get(i, 0)) + 0.02 * span, i, f"{v:.1f}{suffix if percent else ''}", va="center", fontsize=8)
    ax.set_yticks(y, [r[label] for r in rows])
    ax.set_xlim(min(0.0, float((vals - errs).min()) * 1.1) if len(vals) else 0.0, span * 1.12)
    ax.set_xlabel(xlabel)
    fig.tight_layout()
    save_figure(fig, folder, stem, writer)


def difference_bars(
    table: list[dict],
    label: str,
    value: str,
    err: str,
    xlabel: str,
    folder: Path,
    stem: str,
    writer,
    scale: float = 100,
    suffix: str = " pt",
) -> None:
    """Each row's difference from a baseline (``value`` ± ``err``, the paired 95% interval), sorted, as
    bars from a zero line: an interval clear of zero is coloured by its side, one holding zero grey.
    Differences, not absolute values: the effects a comparison is about are not slivers of a 0–100% axis."""
    from callbacks.plot_style import palette, save_figure

    rows, fig, ax, y, vals, errs = _bar_axes(table, value, err, scale)
    up, down = palette(2)
    colors = [up if v - e > 0 else down if v + e < 0 else "0.7" for v, e in zip(vals, errs)]
    ax.barh(y, vals, xerr=errs, color=colors, capsize=3, height=0.6)
    ax.axvline(0, color="0.2", linewidth=0.9)
    lo, hi = float(min(0.0, (vals - errs).min())), float(max(0.0, (vals + errs).max()))
    pad = 0.14 * (hi - lo or 1.0)
    for i, (v, e) in enumerate(zip(vals, errs)):
        ax.text(
            v + e + 0.02 * (hi - lo or 1.0) if v >= 0 else v - e - 0.02 * (hi - lo or 1.0),
            i,
            f"{v:+.1f}{suffix}",
            va="center",
            ha="left" if v >= 0 else "right",
            fontsize=8,
        )
    ax.set_yticks(y, [r[label] for r in rows])
    ax.set_xlim(lo - pad, hi + pad)
    ax.set_xlabel(xlabel)
    fig.tight_layout()
    save_figure(fig, folder, stem, writer)
