"""Lightning's own tools from the config: the model summary, callbacks from config, K-fold alone."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml
from pytorch_lightning.callbacks import ModelSummary
from pytorch_lightning.utilities.model_summary import summarize
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from conftest import SHRINK, TrainerProbe, compose_config
from core.errors import ConfigError
from experiments import build


def test_the_model_summary_shows_each_layer_with_its_sizes():
    cfg = compose_config()
    callbacks, _ = build.build_callbacks(cfg, Path("unused"), has_val=True)
    assert sum(isinstance(c, ModelSummary) for c in callbacks) == 1 and cfg.callbacks.summary_depth == 2
    off, _ = build.build_callbacks(compose_config("callbacks.summary_depth=0"), Path("unused"), has_val=True)
    assert not any(isinstance(c, ModelSummary) for c in off)
    dm = build.build_datamodule(cfg)
    table = summarize(build.build_module(cfg, dm), max_depth=cfg.callbacks.summary_depth)  # what the callback prints
    rows = dict(zip(table.layer_names, zip(table.in_sizes, table.out_sizes)))
    assert rows["net"] == ([2, 1, 8, 8], [2, 10]) and "net.layers" in rows  # digits: 8×8 images, 10 classes
    assert table.total_parameters == 76_810


def test_a_callback_from_the_config_is_called(train_run):
    run_dir, _ = train_run("callbacks.extra=[{_target_: pytorch_lightning.callbacks.LearningRateMonitor, logging_interval: epoch}]")
    events = EventAccumulator(str(run_dir / "tensorboard"))
    events.Reload()
    lrs = [e.value for e in events.Scalars("lr-Adam/pg1")]  # one value per parameter group (decayed, not decayed)
    assert len(lrs) == 3 and lrs == pytest.approx([1e-3] * 3)  # one value an epoch, the config's lr


@pytest.mark.parametrize(
    "extra, message",
    [
        (
            "[{_target_: lightning.pytorch.callbacks.LearningRateMonitor}]",
            "error: callbacks.extra[0]=lightning.pytorch.callbacks.LearningRateMonitor: this template runs on pytorch_lightning; "
            "use pytorch_lightning.callbacks.LearningRateMonitor",
        ),
        ("[{_target_: collections.OrderedDict}]", "error: callbacks.extra[0]=collections.OrderedDict: not a pytorch_lightning Callback"),
        ("[{logging_interval: epoch}]", "error: callbacks.extra[0]={'logging_interval': 'epoch'}: must be a mapping with a _target_"),
        ("[{_target_: pytorch_lightning.callbacks.Nope}]", "error: callbacks.extra[0]: Error locating target"),
    ],
)
def test_a_bad_callback_from_the_config_is_one_line(cli, tmp_path, extra, message):
    code, _, err = cli(f"callbacks.extra={extra}")
    assert code == 2 and err.strip().startswith(message), err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "outputs" / "runs").exists()


def test_kfold_alone_trains_on_the_folds_and_saves_the_resolved_fraction(train_run):
    run_dir, record = train_run("data.kfold.k=3", "data.kfold.index=2")
    saved = yaml.safe_load((run_dir / ".hydra" / "config.yaml").read_text())
    assert saved["data"]["val_fraction"] == 0.0 and saved["data"]["kfold"] == {"k": 3, "index": 2}
    assert record["val/acc_best"] > 0.5


def test_fast_dev_run_tests_in_memory_and_debug_runs_stay_out_of_runs(cli, tmp_path):
    code, out, err = cli("debug=fdr", "callbacks.progress=none", "callbacks.figures=false")
    assert code == 0, err[-2000:]
    assert "fast_dev_run: tested with the weights in memory" in out
    run_dir = Path(out.strip().splitlines()[-1].removeprefix("run_dir: "))
    assert run_dir.parent == tmp_path / "outputs" / "debug" and not (tmp_path / "outputs" / "runs").exists()
    record = json.loads((run_dir / "metrics.json").read_text())
    assert record["epochs"] == 1 and 0 <= record["test/acc"] <= 1 and record["test_checkpoint"] is None


def test_overfit_batches_fits_one_batch_on_the_device_loader(train_run):
    """The device loader serves the same batch every epoch, as Lightning makes a DataLoader do."""
    run_dir, _ = train_run("+trainer.overfit_batches=1", "trainer.max_epochs=60", "data.loader=device")
    last = list(csv.DictReader(open(run_dir / "history.csv")))[-1]
    assert float(last["train/loss"]) < 0.01 and float(last["train/acc"]) == 1.0


def test_trainer_arguments_the_template_does_not_set_take_effect(train_run):
    """accumulate_grad_batches, limit_train_batches, val_check_interval, num_sanity_val_steps and
    detect_anomaly, in one shrunk run, each effect read back."""
    _, record = train_run(
        "callbacks.extra=[{_target_: conftest.TrainerProbe}]",
        "+trainer.limit_train_batches=8",
        "+trainer.accumulate_grad_batches=4",
        "+trainer.val_check_interval=0.5",
        "+trainer.num_sanity_val_steps=0",
        "+trainer.detect_anomaly=true",
    )
    assert record["steps"] == 3 * 8 // 4  # 3 epochs of 8 batches, one optimizer step every 4
    assert TrainerProbe.seen == {"sanity_batches": 0, "val_batches": 3 * 2, "anomaly": {True}}  # validation twice an epoch


def test_the_profiler_prints_its_report(cli):
    code, out, err = cli("debug=profiler", "callbacks.progress=none", "callbacks.figures=false", "logger=none")
    assert code == 0, err[-2000:]
    run_dir = Path(out.strip().splitlines()[-1].removeprefix("run_dir: "))
    report = (run_dir / "fit-profile.txt").read_text()
    assert "FIT Profiler Report" in report and "run_training_epoch" in report and (run_dir / "test-profile.txt").exists()


def test_several_loggers_at_once_each_read_back(train_run):
    run_dir, record = train_run("logger=[tensorboard,csv]")
    rows = list(csv.DictReader(open(run_dir / "csv" / "metrics.csv")))
    val = [float(r["val/acc"]) for r in rows if r.get("val/acc")]
    assert len(val) == 3 and max(val) == pytest.approx(record["val/acc_best"])
    assert [float(r["test/acc"]) for r in rows if r.get("test/acc")] == [pytest.approx(record["test/acc"])]
    events = EventAccumulator(str(run_dir / "tensorboard"))
    events.Reload()
    assert events.Scalars("test/acc")[-1].value == pytest.approx(record["test/acc"])


def test_an_unknown_logger_key_is_one_line(cli):
    code, _, err = cli("logger=csv", "+logger.nope=1")
    assert code == 2 and err.strip() == (
        "error: logger.nope: unknown logger; valid: tensorboard, csv, mlflow, wandb (logger=none for none; lists: logger=[tensorboard,csv])"
    )


def test_the_lr_finder_suggests_within_its_range_and_leaves_the_run_as_it_was(train_run):
    _, plain = train_run(name="plain")
    run_dir, found = train_run("tune.lr_find=true", "tune.num_training=30", name="found")
    assert found["test/acc"] == plain["test/acc"] and found["val/acc_best"] == plain["val/acc_best"]  # the run is the same
    assert 1e-6 < found["lr_find/suggestion"] < 1.0 and found["lr_find/lr_before"] == 1e-3 and found["lr_find/steps"] <= 30
    assert (run_dir / "figures" / "lr_find.png").stat().st_size > 10_000 and (run_dir / "figures" / "lr_find.pdf").exists()


def test_the_lr_finder_applies_its_suggestion_to_sam(train_run):
    run_dir, record = train_run("optimizer=sam", "tune.lr_find=true", "tune.apply=true", "tune.num_training=30")
    saved = yaml.safe_load((run_dir / ".hydra" / "config.yaml").read_text())
    assert saved["optimizer"]["lr"] == record["lr_find/suggestion"] != record["lr_find/lr_before"]
    assert record["val/acc_best"] > 0.2  # it trained, with SAM's two passes, at the suggested lr


def test_mlflow_and_wandb_take_the_config_the_metrics_and_the_figures(cli, tmp_path, monkeypatch):
    import mlflow

    code, out, err = cli("logger=[csv,mlflow,wandb]", *SHRINK, "callbacks.figures=true")
    assert code == 0, err[-2000:]
    run_dir = Path(out.strip().splitlines()[-1].removeprefix("run_dir: "))
    record = json.loads((run_dir / "metrics.json").read_text())
    uri = f"sqlite:///{tmp_path / 'outputs' / 'mlruns' / 'mlflow.db'}"  # the default: a local store where the run was started
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    [found] = mlflow.search_runs(experiment_names=["mlp_digits"], output_format="list")
    data = found.data
    assert found.info.run_name == run_dir.name and found.info.status == "FINISHED"
    assert data.params["optimizer.lr"] == "0.001" and data.params["model.name"] == "mlp" and len(data.params) > 50
    assert data.metrics["test/acc"] == pytest.approx(record["test/acc"]) and data.metrics["val/acc_best"] == pytest.approx(
        record["val/acc_best"]
    )
    figures = mlflow.MlflowClient().list_artifacts(found.info.run_id, "figures")
    assert {a.path for a in figures} == {"figures/learning_curves.png", "figures/confusion_matrix.png"}
    assert (tmp_path / "outputs" / "mlruns" / "artifacts").is_dir()
    [offline] = (run_dir / "wandb").glob("offline-run-*")  # offline: nothing left the machine
    assert len(list(offline.glob("run-*.wandb"))) == 1 and (offline / "files" / "media" / "images").is_dir()
    assert (run_dir / "csv" / "metrics.csv").exists()


def test_a_missing_logger_package_names_its_extra(monkeypatch):
    import importlib.util

    from experiments import loggers

    real = importlib.util.find_spec
    monkeypatch.setattr(loggers.importlib.util, "find_spec", lambda name: None if name == "mlflow" else real(name))
    with pytest.raises(ConfigError) as raised:
        loggers.check_loggers(compose_config("logger=mlflow").logger)
    assert (
        str(raised.value)
        == "logger=mlflow: needs mlflow, not installed; pip install -e '.[mlflow]' (bash setup.sh --dev installs every extra)"
    )


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["logger=wandb", "logger.wandb.offline=false"],
            "error: logger.wandb.offline=false: sends the run to wandb.ai, which needs an explicit",
        ),
        (
            ["logger=mlflow", "+logger.mlflow.nope=1"],
            "error: logger.mlflow.nope: not an option of the mlflow logger; accepted: tracking_uri, experiment_name",
        ),
    ],
)
def test_a_logger_option_that_cannot_be_is_one_line(cli, monkeypatch, args, message):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    code, _, err = cli(*args)
    assert code == 2 and err.strip().startswith(message) and len(err.strip().splitlines()) == 1, err


def test_a_sweep_composes_a_logger_list_for_its_checks():
    """Hydra leaves a list-valued group out of runtime.choices: the sweep's check composes it whole."""
    from hydra import initialize_config_dir

    from conftest import CONFIG_DIR
    from experiments.hydra_callbacks import Composer

    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = Composer("train", {"model", "data", "optimizer", "logger"})(["logger=[tensorboard,csv]", "seed=1"])
    assert list(cfg.logger) == ["tensorboard", "csv"] and cfg.seed == 1


def test_a_run_saved_in_the_old_config_layout_resumes(train_run, tmp_path):
    from experiments.train import resume

    run_dir, _ = train_run("trainer.max_epochs=1")
    saved = run_dir / ".hydra" / "config.yaml"
    old = yaml.safe_load(saved.read_text())
    old["logger"] = {"name": "tensorboard"}  # as runs saved before the logger group took lists
    for key in ("summary_depth", "extra", "hessian", "landscape"):
        del old["callbacks"][key]
    for key in ("ema_decay", "swa_lr", "swa_start"):  # keys added since, absent from older runs
        del old["regularization"][key]
    del old["tune"]
    saved.write_text(yaml.safe_dump(old))
    record = resume(run_dir, run_dir, report=False, max_epochs=2)
    assert record["epochs"] == 2 and (run_dir / "tensorboard").is_dir()
    assert yaml.safe_load(saved.read_text())["logger"] == {"tensorboard": {}}
