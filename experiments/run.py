"""The one entry point: ``python experiments/run.py [group=option] [key=value] ...``.

A single run writes ``outputs/runs/<time>_<name>/`` and prints ``run_dir: <absolute path>`` last;
``-m`` sweeps write ``outputs/multiruns/<time>_<name>/<job>/``. Configuration errors end with one
line on stderr (``error: optimizer.lr=-1: must be a number > 0``) and exit status 2.
"""
from __future__ import annotations

import json
import os
import sys
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # works from any checkout, installed or not
os.environ.setdefault("HYDRA_FULL_ERROR", "1")  # let errors reach the handler below instead of Hydra's printer
# configs/hydra/launcher/submitit_*.yaml are complete configs that extend the plugin's options of the
# same name (so `hydra/launcher=submitit_slurm` gets the project's preset); Hydra warns about the match.
warnings.filterwarnings("ignore", message=r"(?s).*hydra/launcher/submitit_\w+' is validated against ConfigStore schema")

import hydra  # noqa: E402
from hydra.core.hydra_config import HydraConfig  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

from experiments import cluster  # noqa: E402
from experiments.validation import ConfigError  # noqa: E402


SWEEP_DIR_ENV = "DLF_SWEEP_DIR"  # read by hydra.sweep.dir in configs/train.yaml


def is_rank_zero() -> bool:
    """False in the extra processes of a distributed run (they print nothing of their own)."""
    from lightning_fabric.utilities.rank_zero import rank_zero_only

    return getattr(rank_zero_only, "rank", 0) == 0


class ConfigExit(SystemExit):
    """Ends the process with ``code`` (2: bad configuration, 3: training failed, 4: stopped by
    SIGTERM/SIGUSR1 with its state saved) from inside a Hydra
    job. A SystemExit passes through Hydra's job runner untouched (it catches Exception only), so no
    traceback or job banner is printed."""

    def __init__(self, message: str, code: int = 2):
        super().__init__(code)
        self.message, self.code = message, code


@hydra.main(version_base="1.3", config_path="configs", config_name="train")
def main(cfg: DictConfig) -> float | None:
    from experiments.train import Interrupted, TrainingFailed, latest_checkpoint, resume, train  # Lightning is imported only when a job runs (--help stays fast)

    run_dir = Path(HydraConfig.get().runtime.output_dir).resolve()
    single = HydraConfig.get().mode.name == "RUN"
    if not single:  # DDP children re-run this command: they must sweep into the same folder, not a new timestamp
        os.environ.setdefault(SWEEP_DIR_ENV, str(Path(HydraConfig.get().sweep.dir).resolve()))
    try:
        if cfg.study.name != "none":
            return study(cfg, run_dir, single)
        if cfg.resume is None and cluster.is_restart() and (run_dir / "metrics.json").exists():
            record = json.loads((run_dir / "metrics.json").read_text())  # a requeued job whose run had finished: nothing to redo
        elif cfg.resume is None and cluster.is_restart() and latest_checkpoint(run_dir):
            record = resume(run_dir, run_dir)  # SLURM requeued the job (or torchrun restarted it): continue in place
        elif cfg.resume is not None:
            from experiments.train import discard_unfinished

            others = [o for o in HydraConfig.get().overrides.task if not o.startswith(("resume=", "callbacks.progress=", "hydra."))]
            if others:  # the run continues with its own saved config: anything else would be silently ignored
                discard_unfinished(run_dir)
                raise ConfigError(f"resume={cfg.resume}: continues with the run's own saved config; drop the other overrides ({' '.join(others)})")
            record = resume(Path(cfg.resume), run_dir)
            run_dir = Path(cfg.resume).resolve()
        else:
            record = train(cfg, run_dir)
    except ConfigError as exc:
        raise ConfigExit(str(exc)) from exc
    except TrainingFailed as exc:  # e.g. a NaN loss: one line, exit 3, the run directory and its checkpoints stay
        raise ConfigExit(str(exc), code=3) from exc
    except Interrupted as exc:  # SIGTERM/SIGUSR1: the state is saved, exit 4, resume= continues
        raise ConfigExit(str(exc), code=4) from exc
    if single and is_rank_zero():
        print(f"run_dir: {run_dir}", flush=True)
    return record.get("test/acc", record.get("test/mse", record.get("test/loss")))  # the value a Hydra sweeper optimizes


def study(cfg: DictConfig, run_dir: Path, single: bool) -> dict:
    """``study=NAME``: the study writes into Hydra's run dir, or an earlier one with study.resume."""
    from experiments.studies import run_study
    from experiments.studies.common import study_dir_for
    from experiments.train import discard_unfinished

    try:
        study_dir = study_dir_for(cfg, run_dir)
        result = run_study(cfg, study_dir)
    except ConfigError:
        discard_unfinished(run_dir)
        raise
    if single and is_rank_zero():
        print(f"study_dir: {study_dir}", flush=True)
    return result


def cli() -> int:
    from experiments.errors import config_error_message

    stamp = cluster.run_stamp(argv=sys.argv[1:])  # torchrun / srun: every process (every node) names the same run directory
    if stamp:
        os.environ[cluster.STAMP_ENV] = stamp
        if cluster.launched_rank() != 0 and not any(a.startswith("hydra.output_subdir") for a in sys.argv):
            sys.argv.append("hydra.output_subdir=null")  # rank 0 alone writes .hydra/
    try:
        main()
    except ConfigExit as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return exc.code
    except Exception as exc:  # noqa: BLE001 — configuration errors become one line; anything else re-raises
        message = config_error_message(exc)
        if message is None:
            raise
        print(f"error: {message}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(cli())
