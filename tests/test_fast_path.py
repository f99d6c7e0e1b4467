"""The training fast path: the template computes exactly what a hand-written loop computes, and the
training metrics it accumulates on the device (no per-step logging) are the true epoch means."""

from __future__ import annotations

import csv
import warnings

import pytest
import torch


def test_template_training_equals_a_hand_written_loop_to_5_decimals():
    from benchmarks.overhead import loop_fit, template_fit, training_loss

    warnings.filterwarnings("ignore")
    _, template_net, (dm, start, module) = template_fit(["data.batch_size=128"], epochs=3)
    _, loop_net = loop_fit(dm, start, module, epochs=3)
    ours, theirs = training_loss(template_net, dm, module.loss_fn), training_loss(loop_net, dm, module.loss_fn)
    assert round(ours, 5) == round(theirs, 5) and ours < 0.5  # it learned, identically


@pytest.mark.parametrize("data,metrics", [("digits", ("loss", "acc")), ("regression_outliers", ("loss", "mse", "mae"))])
def test_logged_training_metrics_are_the_epoch_means(train_run, data, metrics):
    """With a learning rate of 1e-12 the weights stay put, so the epoch's logged means must equal the
    loss and metrics of the (fixed) network over the whole training split."""
    from experiments.studies.members import load_member

    run_dir, _ = train_run(f"data={data}", "optimizer=sgd", "optimizer.lr=1e-12", "trainer.max_epochs=2", "data.batch_size=50")
    rows = list(csv.DictReader(open(run_dir / "history.csv")))
    _, module, dm = load_member(run_dir)
    x, y = dm.tensors("train")
    with torch.no_grad():
        out = module(x)
    expected = {"loss": float(module.loss_fn(out, y))}
    if "acc" in metrics:
        expected["acc"] = float((out.argmax(1) == y).float().mean())
    else:
        expected["mse"], expected["mae"] = float((out - y).pow(2).mean()), float((out - y).abs().mean())
    for name in metrics:
        assert float(rows[-1][f"train/{name}"]) == pytest.approx(expected[name], rel=1e-5, abs=1e-6), name
