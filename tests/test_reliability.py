"""Never lose a run: a NaN loss stops training with one line naming the step, and the last good
checkpoint stays."""

from __future__ import annotations

import pytest
import torch

from conftest import run_cli


def test_nan_loss_stops_at_its_step_and_keeps_the_last_good_checkpoint(train_run, tmp_path, monkeypatch):
    import lightning_modules.losses as losses
    from experiments.train import TrainingFailed

    real = losses.build_loss  # what the module's rebuild spec calls (lightning_modules/rebuild.py)

    def poisoned(*args, **kwargs):
        loss, calls = real(*args, **kwargs), {"train": 0}

        class Poisoned(torch.nn.Module):
            def forward(self, out, y):
                value = loss(out, y)
                if torch.is_grad_enabled():  # training steps only
                    calls["train"] += 1
                    if calls["train"] > 25:
                        return value * float("nan")
                return value

        return Poisoned()

    monkeypatch.setattr(losses, "build_loss", poisoned)
    with pytest.raises(
        TrainingFailed,
        match=r"^train/loss is nan at step 25 \(epoch 2\); the run stopped .* the last good checkpoint is kept: .*last\.ckpt$",
    ):
        train_run("trainer.max_epochs=5")  # digits: 20 steps an epoch, so step 25 is in epoch 2
    last = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert last["epoch"] == 0 and all(torch.isfinite(v).all() for v in last["state_dict"].values() if v.is_floating_point())


def test_a_diverging_run_exits_3_with_one_line(tmp_path):
    proc = run_cli("optimizer=sgd", "optimizer.lr=1e6", "callbacks.progress=none", cwd=tmp_path)
    assert proc.returncode == 3
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "train/loss is nan at step" in errors[0] and "no checkpoint was written before it" in errors[0]
    assert len(list((tmp_path / "outputs" / "runs").iterdir())) == 1  # the run's directory stays, with its log


def test_a_killed_run_resumes_to_the_same_final_metrics(tmp_path):
    """SIGKILL mid-training, then `resume=<run_dir>`: the same test metrics as an uninterrupted run
    (CPU, deterministic), the whole history, the resume's own Hydra folder gone."""
    import csv
    import json
    import signal
    import subprocess
    import sys

    from conftest import RUN

    args = [
        "data.batch_size=16",
        "trainer.max_epochs=6",
        "trainer.deterministic=true",
        "callbacks.progress=plain",
        "logger=none",
        "callbacks.figures=false",
    ]
    assert run_cli(*args, "hydra.run.dir=outputs/full", cwd=tmp_path).returncode == 0
    proc = subprocess.Popen(
        [sys.executable, str(RUN), *args, "hydra.run.dir=outputs/killed"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    for line in proc.stdout:  # one line per finished epoch
        if line.startswith("epoch 2/"):
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait(timeout=60)
    killed = tmp_path / "outputs" / "killed"
    assert not (killed / "metrics.json").exists() and (killed / "checkpoints" / "last.ckpt").exists()
    resumed = run_cli("resume=outputs/killed", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert resumed.stdout.strip().splitlines()[-1] == f"run_dir: {killed.resolve()}"
    full, again = (json.loads((tmp_path / "outputs" / d / "metrics.json").read_text()) for d in ("full", "killed"))
    assert (again["test/acc"], again["test/loss"], again["epochs"]) == (full["test/acc"], full["test/loss"], full["epochs"])
    assert [int(r["epoch"]) for r in csv.DictReader(open(killed / "history.csv"))] == list(range(1, 7))
    assert not (tmp_path / "outputs" / "runs").exists()  # the resume invocation's own folder was removed
    finished = run_cli("resume=outputs/killed", cwd=tmp_path)
    assert finished.returncode == 2 and "already finished (it has metrics.json); to train it further: resume=" in finished.stderr


def test_a_finished_run_is_extended_in_place(cli, tmp_path):
    """resume=<finished run> trainer.max_epochs=N: N epochs in all, the history contiguous, the
    old metrics.json replaced only at the end; N not above the epochs done is one line."""
    import csv
    import json

    args = ("trainer.max_epochs=3", "callbacks.progress=none", "logger=none", "callbacks.figures=false", "hydra.run.dir=outputs/r")
    code, _, err = cli(*args)
    assert code == 0, err
    run = tmp_path / "outputs" / "r"
    before = json.loads((run / "metrics.json").read_text())
    code, _, err = cli("resume=outputs/r", "trainer.max_epochs=3")
    assert code == 2 and err.strip().endswith("must be an integer above the 3 epochs resume=" + str(run.resolve()) + " has already done")
    assert json.loads((run / "metrics.json").read_text()) == before
    code, out, err = cli("resume=outputs/r", "trainer.max_epochs=5")
    assert code == 0, err
    after = json.loads((run / "metrics.json").read_text())
    assert (before["epochs"], after["epochs"], after["steps"]) == (3, 5, 5 * before["steps"] // 3)
    assert [int(r["epoch"]) for r in csv.DictReader(open(run / "history.csv"))] == [1, 2, 3, 4, 5]
    assert "max_epochs: 5" in (run / ".hydra" / "config.yaml").read_text()
    assert out.strip().splitlines()[-1] == f"run_dir: {run.resolve()}"
