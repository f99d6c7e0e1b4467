"""Studies: ``study=NAME`` runs ``experiments/studies/NAME.py::run(cfg, study_dir)``, which trains
its member runs, writes ``report.md``, ``results.csv`` and ``figures/``, and can be resumed.

A study is any module here with a top-level ``run(cfg, study_dir)``, found by reading the sources
(nothing is imported until one is chosen); helper modules (``common.py``, ``members.py``, ...) have
none. A new study is its module and its ``configs/study/NAME.yaml``: nothing to register here."""

from __future__ import annotations

import ast
import importlib
import re
from functools import lru_cache
from pathlib import Path

from omegaconf import DictConfig

from core.errors import ConfigError


@lru_cache(maxsize=1)
def studies() -> tuple[str, ...]:
    """The names of the study modules, sorted."""
    found = []
    for path in sorted(Path(__file__).parent.glob("*.py")):
        if path.stem.startswith("_"):
            continue
        text = path.read_text()
        try:
            tree = ast.parse(text, filename=str(path))
        except SyntaxError:  # listed all the same: choosing it shows the error, and it breaks no other study
            if re.search(r"^def run\(", text, flags=re.M):
                found.append(path.stem)
            continue
        if any(isinstance(node, ast.FunctionDef) and node.name == "run" and len(node.args.args) == 2 for node in tree.body):
            found.append(path.stem)
    return tuple(found)


def run_study(cfg: DictConfig, study_dir: Path) -> dict:
    if cfg.study.name not in studies():
        raise ConfigError(f"study.name={cfg.study.name!r}: unknown; valid: none, {', '.join(studies())}")
    from experiments.studies.launch import check_launch

    check_launch(cfg.study, cfg.trainer, cfg.study.name)  # study.launcher, workers, detach, slurm: before the study starts
    return importlib.import_module(f"experiments.studies.{cfg.study.name}").run(cfg, study_dir)
