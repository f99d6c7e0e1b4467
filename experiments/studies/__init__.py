"""Studies: ``study=NAME`` runs ``experiments/studies/NAME.py::run(cfg, study_dir)``, which trains
its member runs, writes ``report.md``, ``results.csv`` and ``figures/``, and can be resumed."""

from __future__ import annotations

import importlib
from pathlib import Path

from omegaconf import DictConfig

from core.errors import ConfigError

STUDIES = (
    "optimizers",
    "mnist1d_table",
    "regularizers",
    "loss_robustness",
    "kfold",
    "batch_size",
    "bias_variance",
    "bagging",
    "generative",
)


def run_study(cfg: DictConfig, study_dir: Path) -> dict:
    if cfg.study.name not in STUDIES:
        raise ConfigError(f"study.name={cfg.study.name!r}: unknown; valid: none, {', '.join(STUDIES)}")
    return importlib.import_module(f"experiments.studies.{cfg.study.name}").run(cfg, study_dir)
