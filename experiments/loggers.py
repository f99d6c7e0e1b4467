"""The ``logger`` group: Lightning's own loggers, one key each under ``logger`` (``logger=[tensorboard,mlflow]``).

Every scalar a run logs reaches every logger (Lightning's ``self.log``). What Lightning leaves to the
template is done here: the run's flattened config as MLflow params / the W&B config
(``log_config``), and the figures the run drew (``figures/*.png``) as MLflow artifacts / W&B
images when it ends (``publish_figures``); TensorBoard gets its figures as they are drawn and its
HParams entry from ``experiments/results.py``. MLflow and W&B are optional extras of the package;
the checks here (``check_loggers``) need neither installed, nor torch.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from omegaconf import DictConfig, OmegaConf

from core.errors import ConfigError
from core.rules import Rule, boolean, check


def _text(v: Any):
    return None if isinstance(v, str) and v else "a non-empty string"


def _optional_text(v: Any):
    return None if v is None else _text(v)


@dataclass(frozen=True)
class LoggerOption:
    keys: dict[str, Rule] = field(default_factory=dict)  # what ``logger.<name>.*`` accepts, and its rule
    modules: tuple[str, ...] = ()  # what it imports: absent → the pip extra is named
    extra: str = ""


LOGGERS = {
    "tensorboard": LoggerOption(),
    "csv": LoggerOption(),
    # sqlalchemy and alembic: MLflow's local store is SQLite (its file store is refused by MLflow 3 unless opted in)
    "mlflow": LoggerOption({"tracking_uri": _optional_text, "experiment_name": _text}, ("mlflow", "sqlalchemy", "alembic"), "mlflow"),
    "wandb": LoggerOption({"project": _text, "entity": _optional_text, "offline": boolean}, ("wandb",), "wandb"),
}
MLRUNS = Path("outputs") / "mlruns"  # the local MLflow store, under the folder the run was started from


def check_loggers(logger: DictConfig) -> None:
    """Each ``logger.<name>`` known, with known keys, and its package installed; W&B goes online only with a key."""
    for name in logger:
        option = LOGGERS.get(name)
        if option is None:
            raise ConfigError(
                f"logger.{name}: unknown logger; valid: {', '.join(LOGGERS)} (logger=none for none; lists: logger=[tensorboard,csv])"
            )
        given = logger[name] or {}
        if not OmegaConf.is_dict(given) and not isinstance(given, Mapping):
            raise ConfigError(f"logger.{name}={given}: must be a mapping of its options ({', '.join(option.keys) or 'none'})")
        for key in given:
            if key not in option.keys:
                raise ConfigError(f"logger.{name}.{key}: not an option of the {name} logger; accepted: {', '.join(option.keys) or 'none'}")
            check(f"logger.{name}.{key}", given[key], option.keys[key])
        missing = [m for m in option.modules if importlib.util.find_spec(m) is None]
        if missing:
            raise ConfigError(
                f"logger={name}: needs {', '.join(missing)}, not installed; pip install -e '.[{option.extra}]' "
                "(bash setup.sh --dev installs every extra)"
            )
    wandb = logger.get("wandb")
    if wandb is not None and not wandb.get("offline", True) and not os.environ.get("WANDB_API_KEY"):
        raise ConfigError(
            "logger.wandb.offline=false: sends the run to wandb.ai, which needs an explicit WANDB_API_KEY in the environment; "
            "or keep offline=true and upload later with: wandb sync <run_dir>/wandb/offline-run-*"
        )


def mlflow_uri(tracking_uri: str | None) -> str:
    """``logger.mlflow.tracking_uri``, else ``$MLFLOW_TRACKING_URI``, else the local SQLite store under outputs/mlruns."""
    if tracking_uri:
        return tracking_uri
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    MLRUNS.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{(MLRUNS / 'mlflow.db').resolve()}"


def build_loggers(cfg: DictConfig, run_dir: Path) -> list:
    """The loggers ``logger=`` names, in that order, each writing into its own folder of the run."""
    from pytorch_lightning.loggers import CSVLogger, TensorBoardLogger

    def mlflow(options):
        # MLflow 3 reports usage to its servers from the first import unless told not to: nothing leaves the machine
        os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
        from pytorch_lightning.loggers import MLFlowLogger

        uri = mlflow_uri(options.get("tracking_uri"))
        local = None if options.get("tracking_uri") or os.environ.get("MLFLOW_TRACKING_URI") else (MLRUNS / "artifacts").resolve().as_uri()
        return MLFlowLogger(
            experiment_name=options.get("experiment_name") or cfg.name,
            run_name=run_dir.name,
            tracking_uri=uri,
            artifact_location=local,  # a new experiment's artifacts beside the local store
            tags={"run_dir": str(run_dir)},
        )

    def wandb(options):
        import wandb as wandb_package
        from pytorch_lightning.loggers import WandbLogger

        if wandb_package.run is not None:  # left open by a run of this process that failed: never log into it
            wandb_package.run.finish(exit_code=1)
        return WandbLogger(
            name=run_dir.name,
            save_dir=str(run_dir),  # <run_dir>/wandb/offline-run-*
            project=options.get("project") or "dl-foundations",
            entity=options.get("entity"),
            # wandb.init's own mode: Lightning's offline=True would set WANDB_MODE for the whole process (every later run offline)
            mode="offline" if options.get("offline", True) else "online",
            settings=wandb_package.Settings(silent=True),  # its banners and summary would flood the run's log; one line at the end
        )

    made = {
        "tensorboard": lambda options: TensorBoardLogger(save_dir=str(run_dir), name="tensorboard", version="", default_hp_metric=False),
        "csv": lambda options: CSVLogger(save_dir=str(run_dir), name="csv", version=""),
        "mlflow": mlflow,
        "wandb": wandb,
    }
    return [made[name](cfg.logger[name] or {}) for name in cfg.logger]


def log_config(loggers, config: Mapping[str, Any]) -> None:
    """The run's flattened config as MLflow params / the W&B run's config (TensorBoard's HParams come at the end)."""
    from pytorch_lightning.loggers import MLFlowLogger, WandbLogger  # importing these needs neither package

    from experiments.results import flatten

    flat = flatten(config)
    for logger in loggers:
        if isinstance(logger, (MLFlowLogger, WandbLogger)):
            logger.log_hyperparams(flat)


def publish_figures(loggers, folder: Path) -> None:
    """The run's figures (``folder/*.png``) as MLflow artifacts under ``figures/`` and W&B images
    ``figures/<name>``; then the W&B run is finished (its offline folder complete). Called once the
    run's own results are written: a logger that fails here costs a warning line, never the run."""
    try:
        _publish_figures(loggers, folder)
    except Exception as exc:  # a remote tracking server, a full disk: the run itself is complete
        print(f"warning: the figures did not reach every logger: {type(exc).__name__}: {' '.join(str(exc).split())[:300]}", flush=True)


def _publish_figures(loggers, folder: Path) -> None:
    from pytorch_lightning.loggers import MLFlowLogger, WandbLogger

    pngs = sorted(folder.glob("*.png")) if folder.is_dir() else []
    for logger in loggers:
        if isinstance(logger, MLFlowLogger):
            for png in pngs:
                logger.experiment.log_artifact(logger.run_id, str(png), "figures")
        elif isinstance(logger, WandbLogger):
            for png in pngs:
                logger.log_image(key=f"figures/{png.stem}", images=[str(png)])
            run = logger.experiment
            folder = Path(run.dir).parent  # <run_dir>/wandb/offline-run-*/files → the run's folder
            run.finish()
            print(f"wandb: {'upload with: wandb sync ' + str(folder) if run.offline else 'logged to ' + str(run.url)}", flush=True)
