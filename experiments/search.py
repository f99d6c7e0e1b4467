"""Hyperparameter search (``-m hparams_search=<preset>`` or ``-m hydra/sweeper=optuna``), the run's
side of it: checks before the sweep directory is claimed, the per-epoch report that lets Optuna's
pruner stop a hopeless trial, and the search's table and figures at the end.

The sweeper (``hydra_plugins/dlf_optuna_sweeper``) maximizes or minimizes what each job returns,
which ``experiments/run.py`` makes the run's validation headline (``val/acc_best`` for
classification): the test split never takes part in choosing. ``trials.csv`` carries each
trial's test metrics beside its value as information only.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from hydra_plugins.dlf_optuna_sweeper import optuna_sweeper as sweeper

TRIALS_CSV = "trials.csv"
FIGURES = "figures"


def active(hydra_config: Any) -> bool:
    """Whether this Hydra invocation is an Optuna search."""
    return sweeper.is_optuna_sweeper(hydra_config.get("sweeper"))


def objective(config: DictConfig) -> tuple[str, str]:
    """The value a job returns (run.py: the validation headline) and the direction that improves it."""
    from datamodules.datasets import DATASETS
    from experiments.build import is_generative

    if is_generative(config.model.name):
        return "val/loss_best", "minimize"
    task = DATASETS.get(config.data.name, key="data").info["task"]
    return ("val/acc_best", "maximize") if task == "classification" else ("val/mse_best", "minimize")


def check(config: DictConfig) -> list[tuple[list[str], list[str]]]:
    """The search's options and space, before anything is created (raises the sweeper's one-line
    SearchError); returns the jobs to check whole: every choice and both ends of every range, one
    key at a time (the others as configured)."""
    sweeper.check(config.hydra.sweeper)
    metric, direction = objective(config)
    if config.hydra.sweeper.direction != direction:
        raise sweeper.SearchError(
            f"hydra.sweeper.direction={config.hydra.sweeper.direction}: each trial returns {metric}, which "
            f"is better {'higher' if direction == 'maximize' else 'lower'}; use hydra.sweeper.direction={direction}"
        )
    space, fixed = sweeper.search_space(config.hydra.sweeper.params, list(config.hydra.overrides.task), config)
    values = {k: list(d.choices) if hasattr(d, "choices") else [d.low, d.high] for k, d in space.items()}
    return [
        ([*fixed, f"{key}={sweeper.format_value(v)}"], [f"{key}={sweeper.format_value(v)}"])
        for key, options in values.items()
        for v in options
    ]


def continue_message(hydra_config: Any, stopped: str) -> str:
    """What an interrupted search's job says: the trial is dropped, the search continues."""
    sweep = Path(hydra_config.sweep.dir)
    return (
        f"{stopped.split(';')[0]} in trial {hydra_config.job.num} of the search; its finished trials are kept in {sweep}; "
        f"continue the search with the same command and hydra.sweep.dir={sweep} (the stopped trial is recorded as "
        "interrupted and not counted)"
    )


CONTINUE_MAY_CHANGE = ("n_trials", "n_jobs")  # what a continued search may set anew


def _search_settings(config: DictConfig) -> dict:
    from omegaconf import OmegaConf

    options = OmegaConf.to_container(config.hydra.sweeper, resolve=False)
    for key in CONTINUE_MAY_CHANGE:
        options.pop(key, None)
    return {"sweeper": options, "overrides": list(config.hydra.overrides.task)}


def continues(config: DictConfig, sweep_dir: Path) -> bool:
    """``hydra.sweep.dir`` names an earlier search: this invocation continues it when its settings
    are the same (only n_trials and n_jobs may change); another search there is refused."""
    from omegaconf import OmegaConf

    saved = sweep_dir / "multirun.yaml"
    if not saved.is_file() or saved.stat().st_size == 0:
        return False
    earlier = OmegaConf.load(saved)
    if not sweeper.is_optuna_sweeper(earlier.hydra.get("sweeper")):
        return False  # not a search: claiming it is refused as for any sweep folder
    before, now = _search_settings(earlier), _search_settings(config)
    if before != now:
        changed = sorted({k for k in {**before["sweeper"], **now["sweeper"]} if before["sweeper"].get(k) != now["sweeper"].get(k)})
        what = f"hydra.sweeper.{', hydra.sweeper.'.join(changed)}" if changed else f"the overrides ({' '.join(before['overrides'])})"
        raise sweeper.SearchError(
            f"hydra.sweep.dir={sweep_dir}: holds another search ({what} differ); continue it with its own "
            f"command (only hydra.sweeper.n_trials and n_jobs may change) or choose a new hydra.sweep.dir"
        )
    return True


def trial_report(module):
    """The pruning report for a job of an Optuna search with a pruner; None otherwise."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return None
    hc = HydraConfig.get()
    if hc.mode.name != "MULTIRUN" or not active(hc) or hc.sweeper.pruner == "none":
        return None
    from callbacks.trial_report import TrialReport

    # the sweep checked hydra.sweeper.direction against this headline before it started (check)
    return TrialReport(sweeper.trial_of_job(hc.sweeper, hc.sweep.dir, hc.job.num), f"val/{module.headline[0]}")


def pruned(record: dict) -> BaseException | None:
    """The exception that tells the sweeper a finished job was pruned (its results are written)."""
    if record.get("pruned_at_epoch") is None:
        return None
    import optuna

    return optuna.TrialPruned(f"pruned after epoch {record['pruned_at_epoch']}")


def trial_rows(study) -> list[dict[str, Any]]:
    """A row per trial: number, state (complete | pruned | fail | interrupted), value (the validation objective), params, the run's test
    metrics (information only), wall time and run directory."""
    rows, interrupted = [], set(study.user_attrs.get("interrupted", []))
    for t in study.get_trials(deepcopy=False):
        run_dir = t.user_attrs.get("run_dir")
        metrics_path = Path(run_dir) / "metrics.json" if run_dir else None
        metrics = json.loads(metrics_path.read_text()) if metrics_path and metrics_path.is_file() else {}
        wall = (t.datetime_complete - t.datetime_start).total_seconds() if t.datetime_complete and t.datetime_start else None
        state = "interrupted" if t.number in interrupted else t.state.name.lower()  # stopped by a signal; not counted
        row: dict[str, Any] = {"number": t.number, "state": state, "value": t.value}
        row.update({f"params.{k}": v for k, v in t.params.items()})
        row.update({k: v for k, v in sorted(metrics.items()) if k.startswith("test/")})
        row.update(
            {
                "epochs": metrics.get("epochs"),
                "pruned_at_epoch": metrics.get("pruned_at_epoch"),
                "wall_s": None if wall is None else round(wall, 3),
                "run_dir": run_dir,
            }
        )
        rows.append(row)
    return rows


def report(config: DictConfig) -> list[Path]:
    """``trials.csv`` and the figures (objective by trial with the running best; each parameter
    against the objective) in the sweep directory. Returns what it wrote."""
    import optuna

    from experiments.studies.common import write_csv

    o, sweep_dir = config.hydra.sweeper, Path(config.hydra.sweep.dir)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name=o.study_name, storage=sweeper.storage_url(o, sweep_dir))
    rows = trial_rows(study)
    if not rows:
        return []
    write_csv(sweep_dir / TRIALS_CSV, rows)
    return [sweep_dir / TRIALS_CSV, *figures(study, sweep_dir / FIGURES)]


def figures(study, folder: Path) -> list[Path]:
    from matplotlib.ticker import MaxNLocator, NullFormatter
    from optuna.distributions import CategoricalDistribution
    from optuna.trial import TrialState

    from callbacks.plot_style import new_figure, palette, save_figure

    done = [t for t in study.get_trials(deepcopy=False) if t.state in (TrialState.COMPLETE, TrialState.PRUNED) and t.value is not None]
    if not done:
        return []
    maximize = study.direction.name == "MAXIMIZE"
    colors = palette(3)
    fig, axes = new_figure(width=5.0)
    ax = axes[0][0]
    for state, color, label in ((TrialState.COMPLETE, colors[0], "complete"), (TrialState.PRUNED, colors[1], "pruned (last value)")):
        points = [(t.number, t.value) for t in done if t.state == state]
        if points:
            ax.scatter(*zip(*points), color=color, s=18, label=label, zorder=3)
    complete = sorted((t.number, t.value) for t in done if t.state == TrialState.COMPLETE)
    if complete:
        best, steps = [], (max if maximize else min)
        for _, v in complete:
            best.append(v if not best else steps(best[-1], v))
        ax.step([n for n, _ in complete], best, where="post", color=colors[2], label="best so far")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set(xlabel="trial", ylabel="objective (validation)", title="Objective by trial")
    ax.legend()
    paths = save_figure(fig, folder, "search_history")
    names = sorted({k for t in done for k in t.params})
    fig, axes = new_figure(1, len(names), width=3.6)
    for ax, name in zip(axes[0], names):
        points = [(t.params[name], t.value, t.state == TrialState.PRUNED) for t in done if name in t.params]
        dist = next(t.distributions[name] for t in done if name in t.distributions)
        if isinstance(dist, CategoricalDistribution):
            labels = [str(c) for c in dist.choices]
            xs = [labels.index(str(p)) for p, _, _ in points]
            ax.set_xticks(range(len(labels)), labels)
        else:
            xs = [p for p, _, _ in points]
            if getattr(dist, "log", False):
                ax.set_xscale("log")
                ax.xaxis.set_minor_formatter(NullFormatter())  # decade labels only: minor ones overlap
        ax.scatter(xs, [v for _, v, _ in points], c=[colors[1] if p else colors[0] for _, _, p in points], s=18)
        ax.set(xlabel=name, ylabel="objective (validation)" if ax is axes[0][0] else None)
    paths += save_figure(fig, folder, "search_params")
    return paths
