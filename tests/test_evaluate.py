"""A finished run loaded again: load_run reproduces its test metrics, every module family's
checkpoint rebuilds with load_from_checkpoint alone (weights-only), and eval=<run_dir> re-tests a
run (or tests it on another dataset) into <run_dir>/eval/ without touching the run."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
import torch

from conftest import compose_config, error_lines


def _files(run_dir: Path) -> dict[str, str]:
    return {
        str(p.relative_to(run_dir)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(run_dir.rglob("*"))
        if p.is_file() and "eval" not in p.relative_to(run_dir).parts
    }


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    from experiments.train import train

    run_dir = tmp_path_factory.mktemp("runs") / "digits"
    run_dir.mkdir()
    cfg = compose_config(
        "trainer.max_epochs=3",
        "trainer.deterministic=true",
        "callbacks.progress=none",
        "callbacks.figures=false",
        "logger=none",
        "model.hidden=[64]",
    )
    return run_dir, train(cfg, run_dir, report=False)


def test_load_run_reproduces_the_test_accuracy(digits_run):
    from experiments import load_run

    run_dir, record = digits_run
    module, dm = load_run(run_dir)
    assert not module.training
    correct = total = 0
    with torch.no_grad():
        for x, y in dm.test_dataloader():
            correct += int((module(x).argmax(-1) == y).sum())
            total += len(y)
    assert total == dm.split_sizes()["test"] == 360
    assert correct / total == pytest.approx(record["test/acc"], abs=1e-7)


def test_load_from_checkpoint_needs_no_arguments_and_loads_weights_only(digits_run):
    from lightning_modules.classification import ClassificationModule

    run_dir, _ = digits_run
    path = run_dir / "checkpoints" / "last.ckpt"
    saved = torch.load(path, map_location="cpu", weights_only=True)  # nothing pickled beyond plain data
    module = ClassificationModule.load_from_checkpoint(path, map_location="cpu")
    assert all(torch.equal(saved["state_dict"][k], v) for k, v in module.state_dict().items())
    assert module.num_classes == 10 and module.hparams["rebuild"]["net"]["hparams"]["hidden"] == [64]


@pytest.mark.parametrize(
    "overrides",
    [("model=mlp", "data=regression_outliers"), ("model=vae",), ("model=gan",), ("model=ddpm", "model.timesteps=50"), ("model=pixelcnn",)],
)
def test_every_family_round_trips_through_a_checkpoint(tmp_path, overrides):
    import pytorch_lightning as pl

    from experiments import build

    cfg = compose_config(*overrides)
    dm = build.build_datamodule(cfg)
    module = build.build_module(cfg, dm)
    path = tmp_path / "m.ckpt"
    torch.save(
        {"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams), "pytorch-lightning_version": pl.__version__}, path
    )
    torch.load(path, weights_only=True)
    again = type(module).load_from_checkpoint(path, map_location="cpu")
    assert type(again) is type(module) and dict(again.hparams) == dict(module.hparams)
    assert list(again.state_dict()) == list(module.state_dict())
    assert all(torch.equal(a, b) for a, b in zip(again.state_dict().values(), module.state_dict().values()))


def test_eval_retests_a_run_exactly_and_leaves_it_untouched(cli, digits_run, tmp_path):
    run_dir, record = digits_run
    before = _files(run_dir)
    code, out, err = cli(f"eval={run_dir}")
    assert code == 0, err
    written = sorted((run_dir / "eval").glob("*.json"))
    result = json.loads(written[-1].read_text())
    assert result["test/acc"] == record["test/acc"] and result["test/loss"] == record["test/loss"]  # exactly
    assert result["checkpoint"] == str(run_dir / record["test_checkpoint"]) and result["data"] == "digits"
    last = os.path.relpath(run_dir / "checkpoints" / "last.ckpt", tmp_path)  # a path, relative to where the command runs
    code, _, err = cli(f"eval={run_dir}", f"eval.ckpt={last}")
    assert code == 0, err
    assert json.loads(sorted((run_dir / "eval").glob("*.json"))[-1].read_text())["checkpoint"] == str(run_dir / "checkpoints" / "last.ckpt")
    assert len(list((run_dir / "eval").glob("*.json"))) == 2  # two in the same second are both kept
    assert _files(run_dir) == before  # the run's own files are never modified
    runs = tmp_path / "outputs" / "runs"
    assert not runs.exists() or not any(runs.iterdir())  # and eval leaves no run directory of its own


def test_eval_on_another_dataset_of_the_same_shape(cli, tmp_path):
    from experiments.train import train

    run_dir = tmp_path / "moons"
    run_dir.mkdir()
    train(
        compose_config(
            "data=moons", "trainer.max_epochs=2", "callbacks.progress=none", "callbacks.figures=false", "logger=none", "model.hidden=[16]"
        ),
        run_dir,
        report=False,
    )
    code, _, err = cli(f"eval={run_dir}", "eval.data=circles", "data.test_fraction=0.3")  # the keys every dataset shares may be given
    assert code == 0, err
    result = json.loads(next((run_dir / "eval").glob("*circles.json")).read_text())
    assert result["data"] == "circles" and result["test_size"] == 300 and 0.0 <= result["test/acc"] <= 1.0


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ("eval.data=mnist1d",),
            "eval.data=mnist1d: inputs (1, 40) with 10 outputs, but the run's network takes (1, 8, 8) with 10 outputs",
        ),
        (("optimizer.lr=0.1",), "drop optimizer.lr=0.1"),
        (("eval.ckpt=nope.ckpt",), "eval.ckpt=nope.ckpt: no such checkpoint"),
        (("eval.data=nope",), "eval.data='nope': unknown dataset"),
    ],
)
def test_bad_eval_settings_end_in_one_line(cli, digits_run, tmp_path, args, message):
    run_dir, _ = digits_run
    before = _files(run_dir)
    code, _, err = cli(f"eval={run_dir}", *args)
    assert code == 2 and message in error_lines(err)[0], err
    assert _files(run_dir) == before


def test_eval_of_a_folder_that_is_not_a_finished_run(cli, tmp_path):
    code, _, err = cli(f"eval={tmp_path}")
    assert code == 2 and error_lines(err) == [
        f"error: eval={tmp_path}: not a finished run (a run directory has .hydra/config.yaml and metrics.json)"
    ]
