"""Initialization by name (lightning_modules/nets/init.py), for every family of the model registry:
each scheme gives the weights the standard deviation of its formula and zero biases; ``default``
changes nothing; a bad name or std is one line."""

from __future__ import annotations

import math

import pytest
import torch
from test_nets import SHAPES, config

from lightning_modules.nets import MODELS, build_net
from lightning_modules.nets.init import INITS, LAYERS, expected_std

SCHEMES = [s for s in INITS if s != "default"]


def hparams_of(name: str) -> dict:
    return {} if MODELS.get(name).info.get("generative") else config(name)


def build(name: str, **init) -> torch.nn.Module:
    kind = MODELS.get(name).info["inputs"][0]
    torch.manual_seed(0)
    return build_net(name, SHAPES[kind], kind, 10, **hparams_of(name), **init)


@pytest.mark.parametrize("name", [e.name for e in MODELS])
def test_every_family_s_weights_take_the_scheme_s_std_and_zero_biases(name):
    import inspect

    factory = MODELS.get(name).factory
    default = inspect.signature(factory).parameters.get("activation")
    act = hparams_of(name).get("activation", default.default if default is not None else None)
    for scheme in SCHEMES:
        net = build(name, init=scheme, init_std=0.05)
        checked = 0
        for module in net.modules():
            if not isinstance(module, LAYERS):
                continue
            for pname, p in module.named_parameters(recurse=False):
                if "bias" in pname:
                    assert not p.any(), (scheme, pname)
                elif p.dim() >= 2 and scheme == "zeros":
                    assert not p.any()
                elif p.dim() >= 2 and p.numel() >= 500:
                    want = expected_std(p, scheme, 0.05, act)
                    assert float(p.detach().std()) == pytest.approx(want, rel=5 / math.sqrt(p.numel())), (scheme, pname, tuple(p.shape))
                    checked += 1
        assert checked or scheme == "zeros", (name, scheme)


@pytest.mark.parametrize("name", ["mlp", "cnn", "lstm", "vit"])
def test_default_is_pytorch_s_own_initialization(name):
    a, b = build(name), build(name, init="default")
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_orthogonal_rows_are_orthonormal_times_the_gain():
    net = build("mlp", init="orthogonal")  # relu: gain √2
    w = net.layers[1].weight if hasattr(net, "layers") else next(p for p in net.parameters() if p.dim() == 2)
    rows = w @ w.T if w.shape[0] <= w.shape[1] else w.T @ w
    assert torch.allclose(rows, 2.0 * torch.eye(len(rows)), atol=1e-5)


@pytest.mark.parametrize(
    "args, message",
    [
        (("model.init=he",), "error: model.init='he': unknown; valid: default, xavier_uniform, xavier_normal, kaiming_uniform"),
        (("model.init=normal", "model.init_std=0"), "error: model.init_std=0: must be a number > 0"),
        (("model.init=normal", "model.init_std=-1"), "error: model.init_std=-1: must be a number > 0"),
    ],
)
def test_bad_init_is_refused(cli, tmp_path, args, message):
    code, _, err = cli(*args, cwd=tmp_path)
    assert code == 2 and err.strip().startswith(message), err
    assert not (tmp_path / "outputs").exists()
