"""Shared helpers: compose the real Hydra config, shrink it, run it in-process or through the CLI."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

ROOT = Path(__file__).resolve().parents[1]
CONFIG_DIR = ROOT / "experiments" / "configs"
RUN = ROOT / "experiments" / "run.py"

# Keeps a run to seconds without changing what it exercises.
SHRINK = (
    "trainer.max_epochs=3",
    "trainer.deterministic=true",
    "callbacks.progress=none",
    "callbacks.figures=false",
)  # figures: tests/test_plots.py


def compose_config(*overrides: str) -> DictConfig:
    """The config `python experiments/run.py OVERRIDES` would run (without the hydra section)."""
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose(config_name="train", overrides=list(overrides))


def run_cli(*args: str, cwd: Path, timeout: float = 300, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(RUN), *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)


@pytest.fixture
def cli(tmp_path, monkeypatch, capsys):
    """``python experiments/run.py ARGS`` run inside this process (the imports are paid once for the
    whole suite): ``cli(*args, cwd=tmp_path) -> (exit status, stdout, stderr)``."""
    from hydra.core.global_hydra import GlobalHydra

    from experiments import run

    def go(*args: str, cwd: Path = tmp_path):
        monkeypatch.chdir(cwd)
        monkeypatch.setattr(sys, "argv", [str(RUN), *args])
        monkeypatch.delenv("DLF_SWEEP_DIR", raising=False)  # a sweep exports it for its DDP children
        GlobalHydra.instance().clear()
        capsys.readouterr()
        before = list(logging.root.handlers)
        try:
            code = run.cli()
        finally:  # Hydra's job logging (run.log in the run directory) is for that run only
            for handler in set(logging.root.handlers) - set(before):
                logging.root.removeHandler(handler)
                handler.close()
        out = capsys.readouterr()
        return code, out.out, out.err

    return go


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def run_dirs(root: Path) -> list[Path]:
    """The run directories under ``root/outputs/runs`` (none after a refused run)."""
    runs = root / "outputs" / "runs"
    return sorted(runs.iterdir()) if runs.is_dir() else []


@pytest.fixture
def train_run(tmp_path):
    """Train in-process with the real pipeline: ``train_run(*overrides) -> (run_dir, record)``."""
    from experiments.train import train

    def go(*overrides: str, name: str = "run"):
        run_dir = tmp_path / name
        run_dir.mkdir()
        return run_dir, train(compose_config(*SHRINK, *overrides), run_dir)

    return go


class ReturnProbe:
    """A Hydra callback for tests (``+hydra.callbacks.probe._target_=conftest.ReturnProbe``): records
    the value each job hands to the sweeper, the one a Hydra sweeper would optimize."""

    values: list = []

    def __init__(self, **kwargs):
        pass

    def __getattr__(self, name):  # the other Callback hooks do nothing
        return lambda *args, **kwargs: None

    def on_job_end(self, config, job_return, **kwargs):
        ReturnProbe.values.append(job_return.return_value)


class TrainerProbe(pl.Callback):
    """A Lightning callback for tests (``callbacks.extra=[{_target_: conftest.TrainerProbe}]``): what
    the Trainer did, kept on the class (Hydra builds the instance): sanity-check and validation
    batches, and whether autograd's anomaly detection was on in the training steps."""

    seen: dict = {}

    def __init__(self):
        TrainerProbe.seen = {"sanity_batches": 0, "val_batches": 0, "anomaly": set()}

    def on_validation_batch_end(self, trainer, *args, **kwargs):
        TrainerProbe.seen["sanity_batches" if trainer.sanity_checking else "val_batches"] += 1

    def on_train_batch_start(self, *args, **kwargs):
        TrainerProbe.seen["anomaly"].add(torch.is_anomaly_enabled())
