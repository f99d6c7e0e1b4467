"""The supervised LightningModules on their own (no Hydra): what they log and that they learn."""

from __future__ import annotations

import pytorch_lightning as pl
import torch

from datamodules.device_loader import DeviceBatchLoader
from lightning_modules.losses import build_loss
from lightning_modules.nets import MODELS
from lightning_modules.optimizers import optimizer_factory
from lightning_modules.regression import RegressionModule
from lightning_modules.schedulers import scheduler_factory


def quiet_trainer(**kwargs) -> pl.Trainer:
    return pl.Trainer(
        accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False, **kwargs
    )


def test_regression_module_fits_a_line_and_tracks_best_mse():
    torch.manual_seed(0)
    x = torch.linspace(-1, 1, 256)[:, None]  # (256, 1)
    y = 2 * x + 1  # (256, 1)
    net = MODELS.create("mlp", (1,), 1, hidden=[])  # linear regression
    module = RegressionModule(net, build_loss("mae", "regression"), optimizer_factory("adam", lr=0.05), scheduler_factory("cosine"))
    trainer = quiet_trainer(max_epochs=40)
    trainer.fit(module, DeviceBatchLoader((x, y), 32, shuffle=True), DeviceBatchLoader((x, y), 256, shuffle=False))
    m = trainer.callback_metrics
    assert m["val/mse"] < 1e-3 and m["val/mse_best"] <= m["val/mse"] + 1e-9
    assert {"train/loss", "train/mse", "train/mae", "val/loss", "val/mae"} <= set(m)
    weight, bias = net.layers[-1].weight.item(), net.layers[-1].bias.item()
    assert abs(weight - 2) < 0.05 and abs(bias - 1) < 0.05
    assert trainer.optimizers[0].param_groups[0]["lr"] < 1e-4  # cosine decayed to ~0 over the run
