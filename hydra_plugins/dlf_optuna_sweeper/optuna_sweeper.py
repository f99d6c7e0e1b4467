"""A Hydra sweeper that searches with Optuna: ``python experiments/run.py -m hydra/sweeper=optuna
hydra.sweeper.params.optimizer.lr='tag(log, interval(1e-4, 1e-1))' hydra.sweeper.n_trials=20``.

Written here rather than taken from hydra-optuna-sweeper (1.3.0, the newest) because that plugin
pins optuna<3,>=2.10 (2021-22 releases; this project uses current Optuna, 3.4 and later), and it
neither prunes nor continues a search: a second run on the same storage starts its job numbers at 0
again (its directories collide with the first run's) and asks ``n_trials`` more. The options and the
search-space syntax are that plugin's, so its configs carry over:

- ``params``: ``key: <Hydra sweep>``: ``interval(a, b)`` (float, uniform), ``tag(log, interval(a, b))``
  (log-uniform), ``tag(int, interval(a, b))`` / ``range(a, b[, step])`` (integers; range's stop is
  excluded, as in Python), ``choice(x, y, ...)`` or ``x,y,...`` (categorical); a plain value is fixed.
  Sweeps given on the command line join (and override) ``params``.
- ``storage``: an Optuna storage URL; null = ``sqlite:///<sweep dir>/optuna.db``. The same command with
  the same ``hydra.sweep.dir`` continues the search: finished trials (complete, pruned, failed) count
  toward ``n_trials``; a trial left running by an interruption is marked failed and does not count.
- Each trial is job number = trial number, so its directory (``<sweep dir>/<number>_...``) is unique
  across continuations, and a job can find its trial (``trial_of_job``) to report per-epoch values
  for pruning; a job that raises ``optuna.TrialPruned`` is told pruned, not failed.
- ``optimization_results.yaml`` in the sweep directory: the best trial's number, params and value.
"""

# no `from __future__ import annotations`: Hydra loads this module outside sys.modules while scanning, where
# dataclasses cannot resolve string annotations
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from hydra.core.config_store import ConfigStore
from hydra.core.utils import JobStatus
from hydra.errors import ConfigCompositionException
from hydra.plugins.sweeper import Sweeper
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)

DIRECTIONS = ("maximize", "minimize")
SAMPLERS = ("tpe", "random")
PRUNERS = ("none", "median")
STORAGE_FILE = "optuna.db"
RESULTS_FILE = "optimization_results.yaml"


@dataclass
class OptunaSweeperConf:
    _target_: str = "hydra_plugins.dlf_optuna_sweeper.optuna_sweeper.OptunaSweeper"
    direction: str = "maximize"  # maximize | minimize: the jobs' return value (run.py: the validation headline)
    n_trials: int = 20  # trials of the whole search, counting those of earlier invocations
    n_jobs: int = 1  # trials asked and launched together (a parallel launcher runs them at once)
    study_name: str = "search"
    storage: Optional[str] = None  # null: sqlite:///<sweep dir>/optuna.db
    sampler: str = "tpe"  # tpe | random
    seed: Optional[int] = None  # the sampler's seed
    pruner: str = "none"  # none | median: stop a trial whose per-epoch value is below the median of earlier trials' at that epoch
    pruner_startup_trials: int = 5  # the median pruner prunes nothing until this many trials have finished
    pruner_warmup_epochs: int = 1  # ... and never in a trial's first epochs
    params: Dict[str, Any] = field(default_factory=dict)


ConfigStore.instance().store(group="hydra/sweeper", name="optuna", node=OptunaSweeperConf, provider="dl-foundations")


class SearchError(ConfigCompositionException):
    """A bad search setting; the message is one line naming the key, the value and what is accepted."""


def is_optuna_sweeper(sweeper_config: Any) -> bool:
    return str((sweeper_config or {}).get("_target_", "")) == OptunaSweeperConf._target_


def storage_url(sweeper_config: Any, sweep_dir: Path | str) -> str:
    return sweeper_config.get("storage") or f"sqlite:///{Path(sweep_dir).resolve() / STORAGE_FILE}"


def _parse(key: str, value: Any):
    """``params``' entry as Hydra's parsed override."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        return OverridesParser.create().parse_overrides([f"{key}={value}"])[0]
    except Exception as exc:  # noqa: BLE001 — Hydra's grammar error, as one line
        raise SearchError(f"hydra.sweeper.params.{key}={value}: not a sweep Hydra can parse ({' '.join(str(exc).split())})") from exc


def _distribution(key: str, value: str, sweep: Any):
    """An Optuna distribution for a parsed sweep (``value`` is how it was written), or None for a fixed value."""
    from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, RangeSweep
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    if not isinstance(sweep, (ChoiceSweep, RangeSweep, IntervalSweep)):
        return None
    accepted = {ChoiceSweep: set(), RangeSweep: {"log"}, IntervalSweep: {"log", "int"}}[type(sweep)]
    unknown = sorted(set(sweep.tags) - accepted)
    if unknown:
        raise SearchError(
            f"hydra.sweeper.params.{key}={value}: tag {', '.join(unknown)} does not apply to "
            f"{type(sweep).__name__.replace('Sweep', '').lower()}; accepted: {', '.join(sorted(accepted)) or 'none'}"
        )
    try:
        if isinstance(sweep, ChoiceSweep):
            if not sweep.list:
                raise SearchError(f"hydra.sweeper.params.{key}={value}: an empty choice")
            return CategoricalDistribution(list(sweep.list))
        if isinstance(sweep, RangeSweep):
            start, stop, step = sweep.start, sweep.stop, 1 if sweep.step is None else sweep.step
            if not step > 0 or not stop > start:
                raise SearchError(f"hydra.sweeper.params.{key}={value}: an empty range (stop is excluded; step must be > 0)")
            values = [start + i * step for i in range(math.ceil((stop - start) / step))]
            if "log" in sweep.tags and step != 1:
                raise SearchError(f"hydra.sweeper.params.{key}={value}: tag log needs step 1 (Optuna samples a log range per integer)")
            if all(isinstance(v, int) for v in (start, stop, step)):
                return IntDistribution(values[0], values[-1], step=step, log="log" in sweep.tags)
            return FloatDistribution(float(values[0]), float(values[-1]), step=float(step), log="log" in sweep.tags)
        low, high, tags = sweep.start, sweep.end, sweep.tags
        if not low < high or ("log" in tags and low <= 0):
            raise SearchError(f"hydra.sweeper.params.{key}={value}: needs low < high (and low > 0 with tag log)")
        if "int" in tags:
            return IntDistribution(int(low), int(high), log="log" in tags)
        return FloatDistribution(float(low), float(high), log="log" in tags)
    except ValueError as exc:  # Optuna's own checks (e.g. an integer log range must start at 1 or above)
        raise SearchError(f"hydra.sweeper.params.{key}={value}: {' '.join(str(exc).split())}") from exc


def search_space(params: Dict[str, Any], arguments: Sequence[str], config: DictConfig) -> tuple[dict, list[str]]:
    """The distributions to sample (``params`` and the command line's sweeps) and the fixed
    overrides every trial gets. A key must be a key of the composed config (or start with ``+``)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    space: dict[str, Any] = {}
    fixed: dict[str, str] = {}
    given = {o.get_key_element(): (o, True) for o in (_parse(str(k), v) for k, v in (params or {}).items())}
    for o in OverridesParser.create().parse_overrides(list(arguments)):
        given.pop(o.get_key_element(), None)  # the command line wins over params for the same key
        given[o.get_key_element()] = (o, False)
    for key, (override, in_params) in given.items():
        if not (in_params or override.is_sweep_override()):
            fixed[key] = override.input_line  # a plain command-line override, passed to every trial as written
            continue
        name, value = key.lstrip("+~"), override.input_line.split("=", 1)[1]
        if key == name and not key.startswith("hydra.") and OmegaConf.select(config, name, default=_ABSENT) is _ABSENT:
            raise SearchError(
                f"hydra.sweeper.params: {key!r} is not a config key (a searched key must be one of the "
                f"composed config, e.g. optimizer.lr; to add a new one, write +{key})"
            )
        dist = _distribution(key, value, override.value())
        if dist is None:
            fixed[key] = f"{key}={value}"
        else:
            space[key] = dist
    if not space:
        raise SearchError(
            "hydra.sweeper.params: nothing to search (give at least one key a sweep, e.g. optimizer.lr: tag(log, interval(1e-4, 1e-1)))"
        )
    return space, list(fixed.values())


_ABSENT = object()


def check(sweeper_config: Any) -> None:
    """The options' values (types are checked by the config schema)."""
    for key, value, accepted in (
        ("direction", sweeper_config.direction, DIRECTIONS),
        ("sampler", sweeper_config.sampler, SAMPLERS),
        ("pruner", sweeper_config.pruner, PRUNERS),
    ):
        if value not in accepted:
            raise SearchError(f"hydra.sweeper.{key}={value}: unknown; accepted: {', '.join(accepted)}")
    for key in ("n_trials", "n_jobs"):
        if sweeper_config[key] < 1:
            raise SearchError(f"hydra.sweeper.{key}={sweeper_config[key]}: must be an integer >= 1")
    if sweeper_config.pruner_startup_trials < 0 or sweeper_config.pruner_warmup_epochs < 0:
        raise SearchError("hydra.sweeper.pruner_startup_trials and pruner_warmup_epochs: must be integers >= 0")


def make_pruner(sweeper_config: Any):
    import optuna

    if sweeper_config.pruner == "median":
        return optuna.pruners.MedianPruner(
            n_startup_trials=sweeper_config.pruner_startup_trials, n_warmup_steps=sweeper_config.pruner_warmup_epochs
        )
    return optuna.pruners.NopPruner()


def trial_of_job(sweeper_config: Any, sweep_dir: Path | str, job_num: int):
    """The running trial that a sweep job is (job number = trial number), for ``report`` and
    ``should_prune`` from inside the job, whichever process or machine it runs on."""
    import optuna

    storage = optuna.storages.get_storage(storage_url(sweeper_config, sweep_dir))
    study = optuna.load_study(study_name=sweeper_config.study_name, storage=storage, pruner=make_pruner(sweeper_config))
    study_id = storage.get_study_id_from_name(sweeper_config.study_name)
    return optuna.trial.Trial(study, storage.get_trial_id_from_study_id_trial_number(study_id, job_num))


class OptunaSweeper(Sweeper):
    def __init__(self, **options: Any) -> None:
        super().__init__()
        self.options = OmegaConf.create(options)
        self.config: Optional[DictConfig] = None
        self.launcher = None
        self.hydra_context = None

    def setup(self, *, hydra_context, task_function, config: DictConfig) -> None:
        from hydra.core.plugins import Plugins

        self.hydra_context, self.config = hydra_context, config
        self.launcher = Plugins.instance().instantiate_launcher(hydra_context=hydra_context, task_function=task_function, config=config)

    def _study(self, sweep_dir: Path):
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)  # this sweeper says what each trial ended with
        o = self.options
        study = optuna.create_study(study_name=o.study_name, storage=storage_url(o, sweep_dir), direction=o.direction, load_if_exists=True)
        # a continued search's sampler draws on from where the earlier invocations left off, not again from the same seed
        seed = None if o.seed is None else o.seed + len(study.get_trials(deepcopy=False))
        study.sampler = optuna.samplers.TPESampler(seed=seed) if o.sampler == "tpe" else optuna.samplers.RandomSampler(seed=seed)
        if study.direction.name.lower() != o.direction:
            raise SearchError(
                f"hydra.sweeper.direction={o.direction}: the study {o.study_name!r} in {storage_url(o, sweep_dir)} "
                f"was started with direction {study.direction.name.lower()}"
            )
        return study

    def sweep(self, arguments: List[str]) -> Any:
        from optuna.trial import TrialState

        assert self.config is not None and self.launcher is not None
        check(self.options)
        space, fixed = search_space(self.options.params, arguments, self.config)
        sweep_dir = Path(self.config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
        study = self._study(sweep_dir)
        interrupted = set(study.user_attrs.get("interrupted", []))
        if not self.options.storage:  # the sweep's own file, and the caller holds the sweep dir: a running trial was left by a stop
            for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING, TrialState.WAITING)):
                study.tell(trial.number, state=TrialState.FAIL)
                interrupted.add(trial.number)
            study.set_user_attr("interrupted", sorted(interrupted))
        done = sum(1 for t in study.get_trials(deepcopy=False) if t.state.is_finished() and t.number not in interrupted)
        if done:
            log.info(f"search {self.options.study_name}: {done} finished trial(s) kept, {max(0, self.options.n_trials - done)} to go")
        returns = []
        while done < self.options.n_trials:
            trials = [study.ask(space) for _ in range(min(self.options.n_jobs, self.options.n_trials - done))]
            numbers = [t.number for t in trials]
            batch = [[*fixed, *(f"{k}={format_value(t.params[k])}" for k in space)] for t in trials]
            self.validate_batch_is_legal(batch)
            if numbers == list(range(numbers[0], numbers[0] + len(numbers))):
                results = self.launcher.launch(batch, initial_job_idx=numbers[0])
            else:  # another process asks from the same storage: each job keeps its trial's number
                results = [r for job, n in zip(batch, numbers) for r in self.launcher.launch([job], initial_job_idx=n)]
            for trial, result in zip(trials, results):
                self._tell(study, trial, result)
            returns.append(results)
            done += len(trials)
            self._write_results(study, sweep_dir)
        self._write_results(study, sweep_dir)
        return returns

    @staticmethod
    def _tell(study, trial, result) -> None:
        import optuna
        from optuna.trial import TrialState

        run_dir = result.hydra_cfg.hydra.runtime.output_dir if result.hydra_cfg is not None else None
        if run_dir:
            trial.set_user_attr("run_dir", str(Path(run_dir).resolve()))
        if result.status == JobStatus.COMPLETED and _finite(result.return_value):
            study.tell(trial, float(result.return_value))
            best = study.best_trial
            log.info(f"trial {trial.number}: {float(result.return_value):.6g} (best so far: {best.value:.6g}, trial {best.number})")
            return
        pruned = result.status == JobStatus.FAILED and isinstance(result._return_value, optuna.TrialPruned)
        if pruned:  # the job stopped early on the pruner's word: Optuna keeps its last reported value
            study.tell(trial, state=TrialState.PRUNED)
            log.info(f"trial {trial.number}: pruned")
            return
        why = (
            f"the job raised {result._return_value!r}"
            if result.status == JobStatus.FAILED
            else f"the job returned {result.return_value!r}, not a finite number (see its failed.json, if any)"
        )
        log.warning(f"trial {trial.number}: {why}; recorded as failed")
        study.tell(trial, state=TrialState.FAIL)

    def _write_results(self, study, sweep_dir: Path) -> None:
        from optuna.trial import TrialState

        complete = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))]
        if not complete:
            return
        best = study.best_trial
        results = {
            "name": "optuna",
            "direction": self.options.direction,
            "best_trial": best.number,
            "best_params": {k: _plain(v) for k, v in best.params.items()},
            "best_value": float(best.value),
            "trials": {
                s.name.lower(): sum(1 for t in study.get_trials(deepcopy=False) if t.state == s)
                for s in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
            },
        }
        tmp = sweep_dir / (RESULTS_FILE + ".tmp")
        OmegaConf.save(OmegaConf.create(results), tmp)
        tmp.replace(sweep_dir / RESULTS_FILE)


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def format_value(value: Any) -> str:
    """A sampled value as a Hydra override value (floats keep full precision)."""
    if isinstance(value, float):
        return repr(value)
    if value is None:
        return "null"
    if isinstance(value, str):
        from hydra.core.override_parser.overrides_parser import OverridesParser

        try:
            if OverridesParser.create().parse_overrides([f"k={value}"])[0].value() == value:
                return value
        except Exception:  # noqa: BLE001 — not a plain value: quoted below
            pass
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    return str(value)
