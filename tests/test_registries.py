"""Every registry entry, parametrized: models, optimizers, schedulers, losses, datasets.

Each entry must also have its config file (one hop from config name to code) and vice versa.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from conftest import CONFIG_DIR
from core.registry import Registry, UnknownNameError
from datamodules.datasets import DATASETS
from lightning_modules.losses import LOSSES, build_loss
from lightning_modules.nets import MODELS
from lightning_modules.optimizers import OPTIMIZERS, optimizer_factory
from lightning_modules.schedulers import SCHEDULERS, scheduler_factory


def group_options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONFIG_DIR / group).glob("*.yaml"))


def group_config(group: str, option: str) -> dict:
    d = OmegaConf.to_container(OmegaConf.load(CONFIG_DIR / group / f"{option}.yaml"))
    d.pop("name")
    return d


@pytest.mark.parametrize("group,registry", [("model", MODELS), ("optimizer", OPTIMIZERS), ("scheduler", SCHEDULERS), ("data", DATASETS)])
def test_every_config_option_has_an_entry_and_back(group, registry):
    assert group_options(group) == registry.list()
    for option in registry.list():
        assert OmegaConf.load(CONFIG_DIR / group / f"{option}.yaml").name == option


@pytest.mark.parametrize("registry", [MODELS, OPTIMIZERS, SCHEDULERS, LOSSES, DATASETS], ids=lambda r: r.kind)
def test_unknown_name_lists_the_valid_ones(registry):
    with pytest.raises(UnknownNameError) as err:
        registry.get("no_such_thing")
    assert str(err.value) == f"unknown {registry.kind} 'no_such_thing'; valid: {', '.join(registry.list())}"


def test_registry_rejects_duplicates_and_upper_case():
    r = Registry("thing")
    r.register("a")(lambda: 1)
    with pytest.raises(ValueError, match="registered twice"):
        r.register("a")(lambda: 2)
    with pytest.raises(ValueError, match="lower-case"):
        r.register("B")
    assert r.create("a") == 1 and "A" in r and r.list() == ["a"]


def test_mlp_refuses_an_empty_shape():
    with pytest.raises(ValueError, match=r"model 'mlp' cannot take input shape \(\)"):
        MODELS.create("mlp", (), 10)


@pytest.mark.parametrize("name", OPTIMIZERS.list())
def test_optimizer_class_and_param_groups(name):
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4), torch.nn.Linear(4, 2))
    hparams = group_config("optimizer", name)
    opt = optimizer_factory(name, weight_decay=0.01, **hparams)(net)
    info = OPTIMIZERS.get(name).info
    assert isinstance(opt, torch.optim.Optimizer)
    if "expect" in info:  # the entry's own declaration: the class it builds
        assert type(opt).__name__ == info["expect"]
    decayed, exempt = opt.param_groups
    assert [tuple(p.shape) for p in decayed["params"]] == [(4, 3), (2, 4)]  # weight matrices only
    assert decayed["weight_decay"] == 0.01 and exempt["weight_decay"] == 0.0 and len(exempt["params"]) == 4
    for key, value in hparams.items():
        if key in decayed:  # what the config says is what the optimizer uses
            assert decayed[key] == (tuple(value) if isinstance(value, list) else value), key
    for key, value in info.get("expect_group", {}).items():  # values the entry sets itself, declared with it
        assert decayed[key] == value and type(decayed[key]) is type(value), (key, decayed[key])
    everything = optimizer_factory(name, weight_decay=0.01, decay_all=True, **hparams)(net)
    assert len(everything.param_groups) == 1 and everything.param_groups[0]["weight_decay"] == 0.01


@pytest.mark.parametrize("name", OPTIMIZERS.list())
def test_optimizer_reduces_a_fixed_loss(name):
    torch.manual_seed(0)
    net = torch.nn.Linear(5, 1)
    x, y = torch.randn(64, 5), torch.randn(64, 1)
    hparams = group_config("optimizer", name)
    hparams["lr"] = max(hparams["lr"], 0.05)  # the update rule is under test, at a lr that moves in 200 steps
    opt = optimizer_factory(name, **hparams)(net)

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(net(x), y)
        loss.backward()
        return loss

    first = closure().item()
    for _ in range(200):
        opt.step(closure)
    assert closure().item() < 0.8 * first, name


def test_optimizer_rejects_a_key_it_does_not_accept():
    with pytest.raises(ValueError, match=r"optimizer.betas: not accepted by optimizer 'sgd'; accepted: lr, momentum"):
        optimizer_factory("sgd", lr=0.1, betas=(0.9, 0.99))
    with pytest.raises(ValueError, match=r"optimizer.betas: not accepted by sam around 'momentum'"):
        optimizer_factory("sam", lr=0.1, base="momentum", betas=(0.9, 0.99))
    with pytest.raises(ValueError, match=rf"optimizer.base='adamm': unknown optimizer; valid: {', '.join(OPTIMIZERS.list())}"):
        optimizer_factory("sam", lr=0.1, base="adamm")
    with pytest.raises(ValueError, match=r"optimizer.base='sam': sam cannot wrap itself"):
        optimizer_factory("sam", lr=0.1, base="sam")


def lr_trajectory(name: str, steps: int = 100, epochs: int = 10, val_losses=None, **hparams) -> list[float]:
    """The lr after each step (per-step schedulers) or each epoch (per-epoch ones), as Lightning steps them."""
    w = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([w], lr=0.1)
    conf = scheduler_factory(name, **hparams)(opt, steps)
    lrs = []
    if conf is None or conf["interval"] == "step":
        for _ in range(steps):
            opt.step()
            if conf is not None:
                conf["scheduler"].step()
            lrs.append(opt.param_groups[0]["lr"])
    else:
        for epoch in range(epochs):
            opt.step()
            conf["scheduler"].step(*([val_losses[epoch]] if "monitor" in conf else []))
            lrs.append(opt.param_groups[0]["lr"])
    return lrs


@pytest.mark.parametrize("name", SCHEDULERS.list())
def test_scheduler_keeps_lr_positive_finite_and_at_most_the_peak(name):
    lrs = lr_trajectory(name, val_losses=[1.0] * 10, **group_config("scheduler", name))
    assert lrs and all(math.isfinite(lr) and lr >= 0 for lr in lrs) and max(lrs) <= 0.1 + 1e-12


def test_scheduler_known_values():
    cos = lr_trajectory("cosine", min_lr_ratio=0.1)
    assert cos[49] == pytest.approx(0.01 + 0.09 * 0.5) and cos[-1] == pytest.approx(0.01)  # midpoint, then min
    assert lr_trajectory("none")[-1] == 0.1
    assert lr_trajectory("step", step_size=3, gamma=0.5)[:7] == pytest.approx([0.1, 0.1, 0.05, 0.05, 0.05, 0.025, 0.025])
    one = lr_trajectory("onecycle", pct_start=0.3)
    assert int(np.argmax(one)) in (28, 29, 30) and max(one) == pytest.approx(0.1, rel=1e-3) and one[-1] < 1e-3
    warm = lr_trajectory("warmup_cosine", warmup_fraction=0.1)
    assert warm[:10] == pytest.approx([0.01 * (i + 2) for i in range(9)] + [0.1], rel=1e-6)  # linear up to lr
    assert warm[-1] == pytest.approx(0.0, abs=1e-9) and all(a >= b for a, b in zip(warm[10:], warm[11:]))
    plateau = lr_trajectory("plateau", factor=0.5, patience=2, val_losses=[1.0, 0.9, 0.9, 0.9, 0.9, 0.8, 0.8, 0.8, 0.8, 0.8])
    assert plateau == pytest.approx([0.1, 0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.05, 0.025, 0.025])


@pytest.mark.parametrize("name", LOSSES.list())
def test_loss_known_value(name):
    """The entry's declared known answer (``expect=(output, target, value)``), e.g. cross_entropy on
    [[2, 0]] against class 0 is log(1 + e^-2); without one, the generic checks: a finite scalar >= 0
    that is 0 at a perfect regression output, and gradients that reach the output."""
    entry = LOSSES.get(name)
    loss = build_loss(name, entry.info["task"])
    classification = entry.info["task"] == "classification"
    if "expect" in entry.info:
        out, target, value = entry.info["expect"]
        target = torch.tensor(target) if classification else torch.tensor(target, dtype=torch.float32)
        assert loss(torch.tensor(out), target).item() == pytest.approx(value)
    out = torch.tensor([[2.0, 0.0], [-1.0, 0.5]], requires_grad=True)
    target = torch.tensor([0, 1]) if classification else torch.tensor([[1.0, 3.0], [0.0, 0.5]])
    value = loss(out, target)
    value.backward()
    assert value.ndim == 0 and math.isfinite(value.item()) and value.item() >= 0 and out.grad.abs().sum() > 0
    if not classification:
        assert loss(target, target).item() == 0


def test_loss_must_fit_the_task():
    with pytest.raises(
        ValueError, match=r"loss.name='mse' is a regression loss but the data is a classification task; use one of: cross_entropy"
    ):
        build_loss("mse", "classification")


def test_every_optimizer_declares_a_family_the_optimizer_study_draws():
    from lightning_modules.optimizers import FAMILY_TITLES

    assert {e.name: e.info.get("family") in FAMILY_TITLES for e in OPTIMIZERS} == {e.name: True for e in OPTIMIZERS}
