"""A finished run, loaded again: ``load_run(run_dir)`` in Python, ``python experiments/run.py
eval=<run_dir> [eval.ckpt=tested|best|last|<path>] [eval.data=<dataset>]`` on the command line.

The network and the DataModule are rebuilt from the run's saved config (``.hydra/config.yaml``):
the same split (``data.split_seed``) and normalization statistics (of the same training split),
then the checkpoint's weights are loaded weights-only. ``eval=`` tests them as the run did and
writes ``<run_dir>/eval/<time>.json``; nothing else in the run directory is touched.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from core.errors import ConfigError

CHECKPOINTS = ("tested", "best", "last")


def saved_config(run_dir: Path, key: str) -> DictConfig:
    run_dir = Path(run_dir)
    saved = run_dir / ".hydra" / "config.yaml"
    if not (saved.is_file() and (run_dir / "metrics.json").is_file()):
        raise ConfigError(f"{key}={run_dir}: not a finished run (a run directory has .hydra/config.yaml and metrics.json)")
    cfg = OmegaConf.load(saved)
    from experiments.seeds import members_folder

    if cfg.get("seeds") is not None:  # its checkpoints hold every member stacked: a member's own directory is a run
        raise ConfigError(
            f"{key}={run_dir}: a run of {len(cfg.seeds)} members (seeds={list(cfg.seeds)}); give one member's directory, "
            f"e.g. {members_folder(cfg, run_dir) / f'seed{cfg.seeds[0]}'}"
        )
    return cfg


def checkpoint(run_dir: Path, which: str, key: str = "eval.ckpt") -> tuple[Path, dict]:
    """``tested`` (the one metrics.json names), ``best``, ``last`` or a path to a checkpoint file; and
    its contents, loaded weights-only."""
    import json

    from experiments.train import check_checkpoint

    run_dir = Path(run_dir)
    if which == "tested":
        tested = json.loads((run_dir / "metrics.json").read_text()).get("test_checkpoint")
        if tested is None:
            raise ConfigError(f"{key}=tested: the run {run_dir} was not tested; choose {key}=best or {key}=last")
        path = run_dir / tested
    elif which == "best":
        found = sorted((run_dir / "checkpoints").glob("best-epoch*.ckpt"))
        if not found:
            raise ConfigError(f"{key}=best: the run {run_dir} kept no best checkpoint (it had no validation split); use {key}=last")
        path = found[-1]
    elif which == "last":
        path = run_dir / "checkpoints" / "last.ckpt"
    else:
        path = Path(which).resolve()
    if not path.is_file():
        raise ConfigError(f"{key}={which}: no such checkpoint ({path}); accepted: {', '.join(CHECKPOINTS)} or a checkpoint file")
    return path, check_checkpoint(path, key)


def load_run(run_dir: str | Path, ckpt: str = "tested", data: DictConfig | None = None) -> tuple[Any, Any]:
    """``(module, datamodule)``: the run's network with the checkpoint's weights, in eval mode, and
    its DataModule set up (all splits) as in that run; ``data`` replaces the run's data config
    (another dataset of the same input shape and number of outputs)."""
    run_dir = Path(run_dir).resolve()
    cfg = saved_config(run_dir, "load_run")
    return _load(cfg, checkpoint(run_dir, ckpt)[1], data)


def _load(cfg: DictConfig, state: dict, data: DictConfig | None) -> tuple[Any, Any]:
    from experiments import build

    dm = build.build_datamodule(cfg)
    module = build.build_module(cfg, dm)
    if data is not None:
        cfg.data = data
        dm = build.build_datamodule(cfg)
    dm.setup()
    if data is not None:
        check_same_shape(module, dm, cfg.data.name)
    module.load_state_dict(state["state_dict"])
    return module.eval(), dm


def check_same_shape(module, dm, name: str) -> None:
    rebuild = module.hparams.get("rebuild", {}).get("net", {})
    trained = (tuple(rebuild.get("input_shape", ())), rebuild.get("num_outputs"))
    given = (tuple(dm.input_shape), dm.num_outputs)
    if trained != given:
        raise ConfigError(
            f"eval.data={name}: inputs {given[0]} with {given[1]} outputs, but the run's network takes "
            f"{trained[0]} with {trained[1]} outputs"
        )


def evaluate(run_dir: Path, ckpt: str, data: DictConfig | None = None) -> dict[str, Any]:
    """Test the run's checkpoint (on another dataset with ``data``) as the run tested it; write and
    return the record."""
    import warnings

    import pytorch_lightning as pl

    from core.files import write_json_atomic
    from experiments.results import print_table
    from experiments.train import QUIET

    for pattern in QUIET:
        warnings.filterwarnings("ignore", message=pattern)
    cfg = saved_config(run_dir, "eval")
    path, state = checkpoint(run_dir, ckpt)
    module, dm = _load(cfg.copy(), state, data)  # (_load replaces the copy's data config with eval.data)
    if dm.split_sizes()["test"] == 0:
        raise ConfigError(f"eval={run_dir}: the dataset {dm.name!r} has no test split here (data.test_fraction=0 and none of its own)")
    trainer_keys = {
        k: v for k, v in OmegaConf.to_container(cfg.trainer, resolve=True).items() if k in ("accelerator", "precision", "deterministic")
    }
    trainer = pl.Trainer(
        **trainer_keys, devices=1, logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False
    )
    trainer.test(module, datamodule=dm, verbose=False)
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("test/")}
    record = {
        **metrics,
        "checkpoint": str(path),
        "data": dm.name,
        "test_size": dm.split_sizes()["test"],
        "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    out = Path(run_dir) / "eval" / f"{time.strftime('%Y-%m-%d_%H-%M-%S')}_{dm.name}.json"
    out.parent.mkdir(exist_ok=True)
    n = 1
    while out.exists():  # two evaluations in the same second keep both
        out = out.with_name(f"{out.stem.rsplit('~', 1)[0]}~{n}.json")
        n += 1
    write_json_atomic(out, record)
    print_table(f"eval on {dm.name}", metrics)
    print(f"eval: {record['checkpoint']} on {dm.name} → {out}", flush=True)
    return record
