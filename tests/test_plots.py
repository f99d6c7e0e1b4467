"""Per-run figures: the confusion matrix's arithmetic, mode restoring, and what a run leaves."""

from __future__ import annotations

import numpy as np
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from callbacks.plots import confusion, predict


def test_confusion_rows_are_fractions_of_the_true_class():
    targets, predictions = np.array([0, 0, 0, 1, 1, 2]), np.array([0, 0, 1, 1, 1, 0])
    m = confusion(targets, predictions, 4)
    expected = np.array([[2 / 3, 1 / 3, 0, 0], [0, 1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 0]])  # class 3 absent: a zero row
    assert np.allclose(m, expected)


def test_predict_restores_the_mode_it_found():
    net = torch.nn.Sequential(torch.nn.Linear(2, 4), torch.nn.Dropout(0.5), torch.nn.Linear(4, 2))
    net.device = torch.device("cpu")
    x = torch.randn(8, 2)
    for mode in (True, False):
        net.train(mode)
        out = predict(net, x)
        assert net.training is mode and torch.equal(out, predict(net, x))  # eval inside: no dropout noise


def test_run_draws_its_figures_and_histograms(train_run):
    run_dir, _ = train_run("data=moons", "model.hidden=[16]", "callbacks.figures=true", "callbacks.histograms_every=1")
    stems = {p.stem for p in (run_dir / "figures").glob("*.pdf")}
    assert stems == {"learning_curves", "confusion_matrix", "decision_boundary"}
    assert all((run_dir / "figures" / f"{s}.png").stat().st_size > 10_000 for s in stems)
    events = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"images": 0, "histograms": 0}).Reload()
    assert {f"figures/{s}" for s in stems} <= set(events.Tags()["images"])
    hist = events.Tags()["histograms"]
    assert "weights/layers.1.weight" in hist and "gradients/layers.1.weight" in hist
    assert len(events.Histograms("weights/layers.1.weight")) == 3  # one per epoch


def test_figures_switch_off(train_run):
    run_dir, _ = train_run("callbacks.figures=false", "trainer.max_epochs=1")
    assert not (run_dir / "figures").exists()
