"""Every network family, parametrized over the model registry and the input kinds each one takes:
shapes, gradients, parameter counts, the dropout/batch-norm switches, learning, known answers."""

from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf

from conftest import CONFIG_DIR
from lightning_modules.nets import MODELS, build_net
from lightning_modules.nets.common import count_parameters
from lightning_modules.nets.patches import patch_embedding
from lightning_modules.nets.resnet import BasicBlock

SHAPES = {"tabular": (64,), "image": (1, 8, 8), "signal": (1, 40), "sequence": (40, 1)}
MORE_IMAGES = [(3, 32, 32), (1, 28, 28)]
CLASSIFIERS = [e for e in MODELS if not e.info.get("generative")]  # the generative nets: tests/test_generative.py
NAMES = [e.name for e in CLASSIFIERS]
CASES = [(e.name, kind, SHAPES[kind]) for e in CLASSIFIERS for kind in e.info["inputs"]]
CASES += [(e.name, "image", s) for e in CLASSIFIERS if "image" in e.info["inputs"] for s in MORE_IMAGES]


def config(name: str) -> dict:
    d = OmegaConf.to_container(OmegaConf.load(CONFIG_DIR / "model" / f"{name}.yaml"))
    d.pop("name")
    return d


def kind_for(name: str, *preferred: str) -> str:
    """The first of ``preferred`` that family ``name`` takes, else the first kind it declares."""
    takes = MODELS.get(name).info["inputs"]
    return next((k for k in preferred if k in takes), takes[0])


def net_for(name: str, kind: str = "signal", shape=None, **overrides):
    torch.manual_seed(0)
    return build_net(name, shape or SHAPES[kind], kind, 10, **{**config(name), **overrides})


@pytest.mark.parametrize("name,kind,shape", CASES, ids=[f"{n}-{k}-{'x'.join(map(str, s))}" for n, k, s in CASES])
def test_forward_shape_and_gradients_reach_every_parameter(name, kind, shape):
    net = net_for(name, kind, shape)
    out = net(torch.randn(3, *shape))
    assert out.shape == (3, 10)
    out.square().sum().backward()
    missing = [n for n, p in net.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing, missing


@pytest.mark.parametrize("name", NAMES)
def test_parameter_count_in_declared_range(name):
    """On MNIST-1D signals (1, 40) (a family that takes none: the first kind it declares, at SHAPES),
    10 classes, with the shipped configs: small enough for a CPU. The range is the entry's own
    declaration (``param_count=(lo, hi)``); an entry without one must have trainable parameters."""
    count = count_parameters(net_for(name, kind_for(name, "signal")))
    lo, hi = MODELS.get(name).info.get("param_count") or (1, float("inf"))
    assert lo <= count <= hi, (count, (lo, hi))


def test_reference_cnn_and_gru_match_the_mnist1d_paper():
    cnn = net_for("cnn")
    assert cnn.features(torch.zeros(1, 1, 40)).shape == (1, 25, 19)  # 475 features into the classifier, as published
    gru = net_for("gru", hidden=6, bidirectional=True, readout="flatten")
    assert gru.head.in_features == 2 * 6 * 40


@pytest.mark.parametrize("name", NAMES)
def test_dropout_and_batch_norm_switches_take_effect(name):
    kind = kind_for(name, "image", "tabular")
    kinds = lambda net: {type(m).__name__ for m in net.modules() if getattr(m, "p", 1) > 0}  # noqa: E731  (p=0 dropouts do nothing)
    on = kinds(net_for(name, kind, dropout=0.3, batch_norm=True))
    off = kinds(net_for(name, kind, dropout=0.0, batch_norm=False))
    assert "Dropout" in on and any(k.startswith("BatchNorm") for k in on), on
    assert "Dropout" not in off and not any(k.startswith("BatchNorm") for k in off), off


def test_batch_norm_null_is_the_family_default():
    has_bn = lambda net: any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in net.modules())  # noqa: E731
    assert has_bn(net_for("resnet", batch_norm=None)) and has_bn(net_for("densenet", batch_norm=None))
    assert not has_bn(net_for("lenet", batch_norm=None)) and not has_bn(net_for("mlp", batch_norm=None))


@pytest.mark.parametrize("name", NAMES)
def test_short_training_lowers_the_loss(name):
    kind = kind_for(name, "signal", "tabular")
    net = net_for(name, kind)
    y = torch.arange(64) % 10
    x = torch.randn(10, *SHAPES[kind])[y] + 0.5 * torch.randn(64, *SHAPES[kind])  # a class template + noise
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    first = torch.nn.functional.cross_entropy(net(x), y).item()
    for _ in range(30):
        loss = torch.nn.functional.cross_entropy(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.5 * first, (first, loss.item())


@pytest.mark.parametrize("name", NAMES)
def test_samples_do_not_see_each_other_in_eval(name):
    """In eval mode sample 0's output depends on sample 0 only (no batch statistics, no mixing)."""
    kind = kind_for(name, "signal", "tabular")
    net = net_for(name, kind, batch_norm=True).eval()
    x = torch.randn(4, *SHAPES[kind], requires_grad=True)
    net(x)[0].sum().backward()
    assert x.grad[1:].abs().max() == 0 and x.grad[0].abs().max() > 0


def test_resnet_block_with_zeroed_residual_branch_is_the_identity():
    block = BasicBlock(2, 16, 16, stride=1, bn=True).eval()
    torch.nn.init.zeros_(block.branch[-1].weight)  # the last batch norm's scale: the branch outputs its bias, 0
    x = torch.relu(torch.randn(2, 16, 8, 8))  # a block's input is a ReLU output
    assert torch.equal(block(x), x)


def test_recurrent_steps_are_causal_and_attention_is_not():
    gru = net_for("gru", "sequence").eval()
    x = torch.randn(1, 40, 1, requires_grad=True)
    out, _ = gru.rnn(x)
    out[0, 9].sum().backward()  # the output at step 9 …
    assert x.grad[0, 10:].abs().max() == 0 and x.grad[0, :10].abs().max() > 0  # … sees steps 0–9 only
    tr = net_for("transformer", "sequence").eval()
    x = torch.randn(1, 40, 1, requires_grad=True)
    tokens = tr.embed(x.transpose(1, 2)).transpose(1, 2) + tr.positions
    tr.encoder(tokens)[0, 0].sum().backward()  # the first token's output sees the last input: no causal mask
    assert x.grad[0, -1].abs().max() > 0


@pytest.mark.parametrize(
    "name,kind,shape,hparams,message",
    [
        ("lenet", "sequence", (40, 1), {}, r"model=lenet: cannot take sequence data of shape \(40, 1\); it takes image, signal data"),
        ("vit", "tabular", (64,), {}, r"model=vit: cannot take tabular data of shape \(64,\); it takes image, signal data"),
        (
            "gru",
            "signal",
            (1, 40),
            {"depth": 3},
            r"model.depth: not a hyperparameter of model 'gru'; it has: hidden, layers, bidirectional, readout",
        ),
        ("vit", "image", (1, 8, 8), {"patch": 9}, r"model.patch=9: must be in \[1, 8\] for input shape \(1, 8, 8\)"),
        ("gru", "signal", (1, 40), {"readout": "max"}, r"model.readout='max': unknown; valid: last, mean, flatten"),
        ("cnn", "signal", (1, 2), {}, r"model=cnn: input shape \(1, 2\) is too small for kernels \[5, 3, 3\] with strides \[2, 1, 1\]"),
        ("transformer", "signal", (1, 40), {"d_model": 30}, r"model.d_model=30: must be divisible by model.heads=4"),
    ],
)
def test_inputs_and_hyperparameters_a_family_cannot_take(name, kind, shape, hparams, message):
    with pytest.raises(ValueError, match=message):
        build_net(name, shape, kind, 10, **{**config(name), **hparams})


def test_patch_embedding_is_the_padded_strided_convolution():
    """nets/patches.py: a Conv1d/Conv2d with kernel = stride = patch over the zero-padded input, its
    parameters named as a plain convolution's (``embed.weight``, ``embed.bias`` in a ViT checkpoint)."""
    torch.manual_seed(0)
    embed = patch_embedding((3, 30, 29), 16, 7)  # padded to 35 × 35: a 5 × 5 grid
    assert isinstance(embed, torch.nn.Conv2d) and embed.tokens == 25 and set(embed.state_dict()) == {"weight", "bias"}
    x = torch.randn(2, 3, 30, 29)
    grid = torch.nn.functional.conv2d(torch.nn.functional.pad(x, (0, 6, 0, 5)), embed.weight, embed.bias, stride=7)
    assert torch.equal(embed(x), grid.flatten(2).transpose(1, 2))
    signal = patch_embedding((2, 43), 8)  # the default: 10 patches of 4, padded to 44 → 11 tokens
    assert isinstance(signal, torch.nn.Conv1d) and signal.patch == 4 and signal(torch.randn(5, 2, 43)).shape == (5, 11, 8)
    vit = net_for("vit", "image", (3, 30, 29), patch=7)
    assert {"embed.weight", "embed.bias"} <= set(vit.state_dict()) and vit.embed.weight.shape == (64, 3, 7, 7)
