"""Each regularizer has a real, tested effect and is a no-op at its neutral value; SAM takes two
forward passes per step; early stopping stops where a scripted loss says it should."""

from __future__ import annotations

import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import EarlyStopping
from test_modules import quiet_trainer

from datamodules.device_loader import DeviceBatchLoader
from lightning_modules.classification import ClassificationModule
from lightning_modules.losses import build_loss
from lightning_modules.nets import MODELS
from lightning_modules.optimizers import optimizer_factory
from lightning_modules.regularizers import Regularization, norm_penalty


def tiny_module(reg: Regularization = Regularization(), optimizer: str = "sgd", **opt) -> ClassificationModule:
    torch.manual_seed(0)
    net = MODELS.create("mlp", (4,), 3, hidden=[8])
    return ClassificationModule(
        net, build_loss(None, "classification"), optimizer_factory(optimizer, lr=0.1, **opt), None, reg, num_classes=3
    )


def ready_to_step(module: ClassificationModule) -> ClassificationModule:
    """What training_step reads when called outside a Trainer: the optimizers, and a log to ignore."""
    module.trainer = type(
        "T", (), {"optimizers": [torch.optim.SGD(module.parameters(), lr=0.1)], "num_training_batches": 1, "_logger_connector": None}
    )()
    module.log = lambda *a, **k: None
    return module


def tiny_data(n: int = 32):
    g = torch.Generator().manual_seed(1)
    return torch.randn(n, 4, generator=g), torch.randint(0, 3, (n,), generator=g)


def test_norm_penalty_equals_its_formula_on_a_known_network():
    net = torch.nn.Linear(2, 2)
    with torch.no_grad():
        net.weight.copy_(torch.tensor([[1.0, -2.0], [3.0, 0.5]]))
        net.bias.copy_(torch.tensor([10.0, -10.0]))
    assert norm_penalty(net, l1=0.1, l2=0.0).item() == pytest.approx(0.1 * 6.5)
    assert norm_penalty(net, l1=0.0, l2=0.01).item() == pytest.approx(0.01 * (1 + 4 + 9 + 0.25))  # biases exempt
    assert norm_penalty(net, l1=0.0, l2=0.01, decay_all=True).item() == pytest.approx(0.01 * (14.25 + 200))
    assert norm_penalty(net, 0.0, 0.0).item() == 0.0


def test_penalty_is_added_to_the_training_loss_and_logged():
    x, y = tiny_data()
    plain, penalized = ready_to_step(tiny_module()), ready_to_step(tiny_module(Regularization(l2=0.5)))
    expected = norm_penalty(penalized.net, 0.0, 0.5).item()
    assert penalized.training_step((x, y), 0).item() == pytest.approx(plain.training_step((x, y), 0).item() + expected, rel=1e-6)


@pytest.mark.parametrize("reg", [Regularization(input_noise=0.5), Regularization(weight_noise=0.5)], ids=["input", "weight"])
def test_noise_changes_training_outputs_not_eval_outputs_nor_stored_weights(reg):
    x, y = tiny_data()
    module = ready_to_step(tiny_module(reg))
    before = {k: v.clone() for k, v in module.state_dict().items()}
    clean_loss = module.loss_fn(module(x), y).item()
    noisy_losses = {module.training_step((x, y), 0).item() for _ in range(3)}
    assert all(abs(v - clean_loss) > 1e-4 for v in noisy_losses) and len(noisy_losses) == 3  # fresh noise each pass
    module.eval()
    assert torch.equal(module(x), module(x)) and module.loss_fn(module(x), y).item() == pytest.approx(clean_loss)
    assert all(torch.equal(before[k], v) for k, v in module.state_dict().items())


def test_weight_noise_gradient_reaches_the_clean_weights():
    x, y = tiny_data()
    module = ready_to_step(tiny_module(Regularization(weight_noise=0.1)))
    module.training_step((x, y), 0).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in module.net.parameters())


def test_sam_step_takes_two_forward_passes_and_logs_one():
    x, y = tiny_data(16)
    module = tiny_module(optimizer="sam", base="sgd", rho=0.05)
    calls = []
    module.net.register_forward_hook(lambda *args: calls.append(module.training))
    logged = []
    original = module._accumulate_train
    module._accumulate_train = lambda *a: (logged.append("train"), original(*a))
    trainer = quiet_trainer(max_steps=3, limit_val_batches=0)
    trainer.fit(module, DeviceBatchLoader((x, y), 16, shuffle=True))
    assert calls.count(True) == 6 and logged.count("train") == 3  # 2 forwards a step, 1 counted in the training metrics


class ScriptedValLoss(pl.LightningModule):
    """val/loss follows a script; nothing is learned."""

    def __init__(self, script):
        super().__init__()
        self.script, self.w = script, torch.nn.Parameter(torch.zeros(1))

    def training_step(self, batch, batch_idx):
        return (self.w**2).sum()

    def validation_step(self, batch, batch_idx):
        self.log("val/loss", self.script[self.current_epoch])

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_early_stopping_stops_on_a_scripted_loss_sequence():
    script = [1.0, 0.8, 0.7, 0.75, 0.72, 0.71, 0.5, 0.4, 0.3, 0.2]  # best at epoch 2, then 3 worse epochs
    data = DeviceBatchLoader((torch.zeros(4, 1),), 4, shuffle=False)
    trainer = quiet_trainer(max_epochs=10, callbacks=[EarlyStopping(monitor="val/loss", mode="min", patience=3)], num_sanity_val_steps=0)
    trainer.fit(ScriptedValLoss(script), data, data)
    assert trainer.current_epoch == 6  # stopped after epoch index 5: epochs 3, 4, 5 did not beat 0.7


def test_dropout_and_batch_norm_switches_change_the_network():
    plain = MODELS.create("mlp", (4,), 3, hidden=[8])
    both = MODELS.create("mlp", (4,), 3, hidden=[8], dropout=0.5, batch_norm=True)
    kinds = lambda net: [type(m).__name__ for m in net.modules()]  # noqa: E731
    assert "Dropout" not in kinds(plain) and "BatchNorm1d" not in kinds(plain)
    assert "Dropout" in kinds(both) and "BatchNorm1d" in kinds(both)
    x = torch.randn(16, 4)
    both.train()
    assert not torch.equal(both(x), both(x))  # dropout is active in training
    both.eval()
    assert torch.equal(both(x), both(x))
