"""The real pipeline end to end: in-process runs on the composed config, and the CLI itself."""

from __future__ import annotations

import csv
import json

import pytest
import torch
import yaml
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2

from conftest import CONFIG_DIR, run_cli
from datamodules.datasets import DATASETS
from lightning_modules.nets import MODELS
from lightning_modules.optimizers import OPTIMIZERS
from lightning_modules.schedulers import SCHEDULERS

SCALARS = {"train/loss", "train/acc", "val/loss", "val/acc", "val/acc_best", "test/loss", "test/acc", "train/lr"}


def test_run_writes_metrics_events_hparams_and_checkpoints(train_run):
    run_dir, record = train_run()
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics == record
    assert {"test/acc", "test/loss", "val/acc_best", "seed", "epochs", "wall_s"} <= set(metrics)
    assert metrics["seed"] == 0 and metrics["epochs"] == 3 and 0 < metrics["wall_s"] < 120
    assert 0.8 < metrics["test/acc"] <= 1.0  # 3 epochs of Adam on digits

    events = EventAccumulator(str(run_dir / "tensorboard"))
    events.Reload()
    assert SCALARS <= set(events.Tags()["scalars"])
    assert events.Scalars("test/acc")[-1].value == pytest.approx(metrics["test/acc"])
    assert len(events.Scalars("val/loss")) == 3
    train_loss = [e.value for e in events.Scalars("train/loss")]
    assert train_loss[-1] < train_loss[0]
    hp = plugin_data_pb2.HParamsPluginData.FromString(events.SummaryMetadata("_hparams_/experiment").plugin_data.content)
    assert {m.name.tag for m in hp.experiment.metric_infos} == {"test/acc", "test/loss", "val/acc_best"}
    assert {"optimizer.lr", "model.name", "seed"} <= {h.name for h in hp.experiment.hparam_infos}

    ckpts = run_dir / "checkpoints"
    best = ckpts / metrics["test_checkpoint"].split("/")[-1]
    assert (ckpts / "last.ckpt").is_file() and best.is_file() and best.name.startswith("best-epoch")
    state = torch.load(ckpts / "last.ckpt", map_location="cpu", weights_only=True)
    assert state["epoch"] == 2 and any(k.startswith("net.") for k in state["state_dict"])

    saved = yaml.safe_load((run_dir / ".hydra" / "config.yaml").read_text())
    assert saved["name"] == "mlp_digits"  # resolved, not ${model.name}_${data.name}


def test_same_seed_gives_identical_metrics_and_another_seed_does_not(train_run):
    keys = ("test/acc", "test/loss", "val/acc_best")
    _, a = train_run("seed=5", name="a")
    _, b = train_run("seed=5", name="b")
    _, c = train_run("seed=6", name="c")
    assert [a[k] for k in keys] == [b[k] for k in keys]
    assert a["test/loss"] != c["test/loss"]


def test_default_mlp_learns_digits(train_run):
    """The default recipe (20 epochs) — test accuracy is ≥ 0.97 on seed 0; assert a margin below."""
    _, record = train_run("trainer.max_epochs=20")
    assert record["test/acc"] >= 0.95 and record["epochs"] == 20


def test_regularization_keys_reach_their_components(train_run):
    run_dir, record = train_run(
        "regularization.dropout=0.2",
        "regularization.batch_norm=true",
        "regularization.label_smoothing=0.1",
        "regularization.weight_decay=1e-4",
        "regularization.grad_clip=1.0",
        "regularization.early_stopping=1",
        "optimizer=sgd",
        "scheduler=cosine",
        "trainer.max_epochs=4",
    )
    assert record["test/acc"] > 0.5 and 1 <= record["epochs"] <= 4


def test_cli_default_run_prints_table_and_run_dir_last(tmp_path):
    proc = run_cli("trainer.max_epochs=2", "callbacks.progress=plain", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.strip().splitlines()
    assert lines[-1].startswith("run_dir: ")
    run_dir = tmp_path / lines[-1].removeprefix("run_dir: ")
    assert run_dir.parent == tmp_path / "outputs" / "runs" and run_dir.name.endswith("_mlp_digits")
    assert {"metrics.json", ".hydra", "tensorboard", "checkpoints", "run.log"} <= {p.name for p in run_dir.iterdir()}
    assert "test/acc" in proc.stdout and "epoch 2/2" in proc.stdout
    assert "GPU available" not in proc.stdout + proc.stderr and "Tip" not in proc.stdout + proc.stderr


def test_cli_multirun_makes_one_directory_per_job(tmp_path):
    proc = run_cli("-m", "optimizer=sgd,adam", "seed=1,2", "trainer.max_epochs=1", "callbacks.progress=none", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (sweep,) = (tmp_path / "outputs" / "multiruns").iterdir()
    jobs = sorted(p.name for p in sweep.iterdir() if p.is_dir())
    expected = ["0_optimizer=sgd,seed=1", "1_optimizer=sgd,seed=2", "2_optimizer=adam,seed=1", "3_optimizer=adam,seed=2"]
    assert jobs == [f"{j},trainer.max_epochs=1" for j in expected]  # callbacks.progress is left out of names
    seeds = [json.loads((sweep / j / "metrics.json").read_text())["seed"] for j in jobs]
    assert seeds == [1, 2, 1, 2]
    assert yaml.safe_load((sweep / jobs[2] / ".hydra" / "config.yaml").read_text())["optimizer"]["name"] == "adam"


def test_cli_help_and_cfg(tmp_path):
    """--help lists every config group (a folder of experiments/configs) with its options (the folder's
    YAML files), and the registry-backed groups list exactly their registries' names."""
    help_text = run_cli("--help", cwd=tmp_path).stdout
    groups = {
        d.name: sorted(p.stem for p in d.glob("*.yaml"))
        for d in CONFIG_DIR.iterdir()
        if d.is_dir() and d.name != "hydra" and any(d.glob("*.yaml"))
    }
    listed = help_text.split("== Config groups (choose with group=option) ==\n")[1].split("\n\n")[0].splitlines()
    assert listed == [f"{group}: {', '.join(options)}" for group, options in sorted(groups.items())]
    for group, registry in (("model", MODELS), ("optimizer", OPTIMIZERS), ("scheduler", SCHEDULERS), ("data", DATASETS)):
        assert f"{group}: {', '.join(registry.list())}" in listed
    assert {"model", "optimizer", "scheduler", "regularization", "data", "trainer", "experiment", "study", "callbacks", "logger"} <= set(
        groups
    )
    cfg = yaml.safe_load(run_cli("--cfg", "job", "optimizer.lr=0.01", "data.batch_size=32", cwd=tmp_path).stdout)
    assert cfg["optimizer"]["lr"] == 0.01 and cfg["data"]["batch_size"] == 32
    assert not (tmp_path / "outputs").exists()


def test_run_without_validation_or_logger(train_run):
    run_dir, record = train_run("data.val_fraction=0", "test_ckpt=last", "logger=none")
    assert record["test_checkpoint"] == "checkpoints/last.ckpt" and record["test/acc"] > 0.8
    assert not (run_dir / "tensorboard").exists() and "val/acc_best" not in record


@pytest.mark.parametrize(
    "overrides,bar",
    [
        (("model=lenet", "data=digits"), 0.5),
        (("model=resnet", "data=digits", "model.blocks=[1,1]", "model.widths=[8,16]"), 0.5),
        (("model=vit", "data=digits", "model.d_model=32", "model.layers=1"), 0.3),
        (("model=gru", "data=mnist1d", "model.hidden=8", "model.readout=flatten"), 0.3),
        (("model=cnn", "data=mnist1d"), 0.3),
    ],
    ids=["lenet-digits", "resnet-digits", "vit-digits", "gru-mnist1d-signal", "cnn-mnist1d"],
)
def test_families_train_from_the_config(train_run, overrides, bar):
    """Each family through the real pipeline (3 epochs): the training loss falls, test accuracy clears chance (0.1) by a margin."""
    run_dir, record = train_run(*overrides, "optimizer.lr=3e-3")
    losses = [float(row["train/loss"]) for row in csv.DictReader(open(run_dir / "history.csv"))]
    assert losses[-1] < losses[0] and record["test/acc"] > bar, (losses, record["test/acc"])


def test_recurrent_regression_head_on_the_adding_problem(train_run):
    """The LSTM's regression head learns the adding problem: predicting the mean scores the variance of
    the sum of two U(0, 1) values, 1/6 ≈ 0.167; 15 short epochs get well below it."""
    _, record = train_run(
        "model=lstm",
        "data=sequences",
        "data.dataset.n_samples=1000",
        "data.dataset.length=10",
        "optimizer.lr=1e-2",
        "trainer.max_epochs=15",
    )
    assert record["test/mse"] < 0.1, record
