"""Weight averaging by name (callbacks/averaging.py): the EMA after n steps equals a hand
computation, SWA's average equals the mean of its epochs' snapshots, the averaged weights are the
ones validated, checkpointed and tested, batch-norm statistics are recomputed for them; refusals."""

from __future__ import annotations

import csv

import pytest
import torch
from pytorch_lightning.callbacks import Callback

from conftest import SHRINK, compose_config

MOONS = ("data=moons", "model.hidden=[8]", "data.batch_size=100", "test_ckpt=last")  # 700 training points: 7 equal batches


class Snapshots(Callback):
    """The network's weights after every optimizer step and at every epoch's end, the lr of each step."""

    steps: list = []
    epochs: list = []
    lrs: list = []

    def __init__(self):
        Snapshots.steps, Snapshots.epochs, Snapshots.lrs = [], [], []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        Snapshots.steps.append({k: v.detach().clone() for k, v in pl_module.net.named_parameters()})
        Snapshots.lrs.append(trainer.optimizers[0].param_groups[0]["lr"])

    def on_train_epoch_end(self, trainer, pl_module):
        Snapshots.epochs.append({k: v.detach().clone() for k, v in pl_module.net.named_parameters()})


RECORD = "callbacks.extra=[{_target_: test_averaging.Snapshots}]"


def checkpoint_weights(run_dir, name="last.ckpt") -> dict[str, torch.Tensor]:
    state = torch.load(run_dir / "checkpoints" / name, map_location="cpu", weights_only=True)["state_dict"]
    return {k.removeprefix("net."): v for k, v in state.items() if k.startswith("net.")}


def val_loss_of(weights: dict[str, torch.Tensor], *overrides: str, split: str = "val") -> float:
    """The loss of ``weights`` on ``split`` in the run's own network, computed here (not by the run)."""
    from experiments.build import build_datamodule, build_module

    cfg = compose_config(*SHRINK, *overrides)
    dm = build_datamodule(cfg)
    dm.setup()
    module = build_module(cfg, dm)
    module.net.load_state_dict(weights)
    module.eval()
    x, y = dm.tensors(split)
    with torch.no_grad():
        return float(module.loss_fn(module.net(x), y))


def test_ema_after_n_steps_equals_the_hand_computation_and_is_what_is_validated_and_tested(train_run):
    overrides = (*MOONS, "regularization.ema_decay=0.8", RECORD)
    run_dir, record = train_run(*overrides)
    assert len(Snapshots.steps) == 3 * 7
    ema = dict(Snapshots.steps[0])  # the first update copies the weights, then decay · average + (1 − decay) · weights
    for step in Snapshots.steps[1:]:
        ema = {k: 0.8 * ema[k] + 0.2 * step[k] for k in ema}
    saved = checkpoint_weights(run_dir)
    for k, v in ema.items():
        assert torch.allclose(saved[k], v, rtol=1e-5, atol=1e-7), k
        assert not torch.allclose(Snapshots.steps[-1][k], v, rtol=1e-3)  # not the last iterate
    history = list(csv.DictReader(open(run_dir / "history.csv")))
    assert float(history[-1]["val/loss"]) == pytest.approx(val_loss_of(ema, *overrides[:-1]), rel=1e-5)
    assert record["test_checkpoint"].endswith("last.ckpt")
    assert record["test/loss"] == pytest.approx(val_loss_of(ema, *overrides[:-1], split="test"), rel=1e-5)  # the average is tested


def test_swa_averages_the_epochs_from_swa_start_at_swa_lr(train_run):
    overrides = (*MOONS, "trainer.max_epochs=4", "regularization.swa_lr=0.05", "regularization.swa_start=2", RECORD)
    run_dir, record = train_run(*overrides)
    assert Snapshots.lrs[:7] == [1e-3] * 7 and Snapshots.lrs[7:] == [0.05] * 21  # adam's own lr for epoch 1, then swa_lr
    snapshots = Snapshots.epochs[1:]  # the ends of epochs 2, 3 and 4
    mean = {k: sum(s[k] for s in snapshots) / 3 for k in snapshots[0]}
    saved = checkpoint_weights(run_dir)
    for k, v in mean.items():
        assert torch.allclose(saved[k], v, rtol=1e-5, atol=1e-7), k
    history = list(csv.DictReader(open(run_dir / "history.csv")))
    assert float(history[-1]["val/loss"]) == pytest.approx(val_loss_of(mean, *overrides[:-1]), rel=1e-5)
    assert record["test/loss"] == pytest.approx(val_loss_of(mean, *overrides[:-1], split="test"), rel=1e-5)
    # before SWA starts, the run validates its iterate, as it would without SWA
    assert float(history[0]["val/loss"]) == pytest.approx(val_loss_of(Snapshots.epochs[0], *overrides[:-1]), rel=1e-5)


def test_batch_norm_statistics_are_recomputed_for_the_averaged_weights(train_run):
    overrides = (*MOONS, "regularization.batch_norm=true", "regularization.ema_decay=0.5")
    run_dir, _ = train_run(*overrides)
    saved = checkpoint_weights(run_dir)
    # the first layer's pre-activations on the training split under the averaged weights: the mean of the
    # 7 equal batches' means is their mean over the split, which the recomputed running mean must be
    from experiments.build import build_datamodule

    dm = build_datamodule(compose_config(*SHRINK, *overrides))
    dm.setup()
    x, _ = dm.tensors("train")
    weight = next(v for k, v in saved.items() if k.endswith("weight") and v.dim() == 2)
    bias_key = [k for k, v in saved.items() if k.endswith("bias") and v.shape == weight.shape[:1]][0]
    means = [k for k in saved if k.endswith("running_mean")]
    expected = (x @ weight.T + saved[bias_key]).mean(0)
    assert torch.allclose(saved[means[0]], expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    "args, message",
    [
        (("regularization.ema_decay=1.0",), "error: regularization.ema_decay=1.0: must be a number in (0, 1) or null"),
        (("regularization.swa_lr=0.01",), "error: regularization.swa_lr=0.01: needs regularization.swa_start too"),
        (
            ("regularization.swa_lr=0.01", "regularization.swa_start=30", "test_ckpt=last"),
            "error: regularization.swa_start=30: beyond trainer.max_epochs=20; SWA would never start",
        ),
        (
            ("regularization.swa_lr=0.01", "regularization.swa_start=5", "test_ckpt=last", "scheduler=cosine"),
            "error: regularization.swa_lr=0.01 with scheduler=cosine: SWA holds the lr at swa_lr",
        ),
        (
            ("regularization.swa_lr=0.01", "regularization.swa_start=5"),
            "error: regularization.swa_lr=0.01 with test_ckpt=best: the best checkpoint may be an iterate",
        ),
        (
            ("regularization.swa_lr=0.01", "regularization.swa_start=5", "regularization.ema_decay=0.9", "test_ckpt=last"),
            "error: regularization.ema_decay=0.9 with regularization.swa_lr=0.01: two averages",
        ),
        (("seeds=[0,1]", "regularization.ema_decay=0.9"), "error: seeds=[0, 1] with regularization.ema_decay=0.9: is not done per member"),
        (("model=vae", "regularization.ema_decay=0.9"), "error: regularization.ema_decay=0.9: not applied by the generative model 'vae'"),
    ],
)
def test_averaging_settings_it_cannot_honour_are_refused(cli, tmp_path, args, message):
    code, _, err = cli(*args, cwd=tmp_path)
    assert code == 2 and err.strip().startswith(message), err
    assert not (tmp_path / "outputs").exists()


def test_a_checkpoint_saved_mid_validation_keeps_the_average_as_its_weights():
    """SIGTERM (or SLURM's SIGUSR1) between validation batches saves while the average is swapped in:
    the checkpoint's weights must still be the average, its current_model_state the iterate."""
    from types import SimpleNamespace

    import pytorch_lightning as pl
    from pytorch_lightning.trainer.states import TrainerFn

    from callbacks.averaging import EMAWeights

    class Tiny(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = torch.nn.Linear(2, 1)

    module, ema = Tiny(), EMAWeights(decay=0.5)
    trainer = SimpleNamespace(global_step=0, sanity_checking=False, state=SimpleNamespace(fn=TrainerFn.FITTING))
    ema.setup(trainer, module, "fit")
    start = module.net.weight.detach().clone()
    for step in (1, 2):  # the average: a copy after step 1 (start + 1), then 0.5 · it + 0.5 · (start + 2)
        with torch.no_grad():
            module.net.weight.add_(1.0)
        trainer.global_step = step
        ema.on_train_batch_end(trainer, module, None, None, 0)
    ema.on_validation_epoch_start(trainer, module)  # the average swapped in, as Lightning validates it
    assert torch.allclose(module.net.weight, start + 1.5)
    checkpoint = {"state_dict": module.state_dict()}
    ema.on_save_checkpoint(trainer, module, checkpoint)
    assert torch.allclose(checkpoint["state_dict"]["net.weight"], start + 1.5)
    assert torch.allclose(checkpoint["current_model_state"]["net.weight"], start + 2)
    ema.on_validation_epoch_end(trainer, module)
    checkpoint = {"state_dict": module.state_dict()}  # and after validation, as Lightning saves it normally
    ema.on_save_checkpoint(trainer, module, checkpoint)
    assert torch.allclose(checkpoint["state_dict"]["net.weight"], start + 1.5)
    assert torch.allclose(checkpoint["current_model_state"]["net.weight"], start + 2)
