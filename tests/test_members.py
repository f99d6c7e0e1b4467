"""numerics/members.py: K networks of one architecture trained at once follow, member by member,
the runs they would make alone (the same losses step by step, the same final weights), and each
member comes out as a lone network of the family."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from lightning_modules.nets import build_net
from lightning_modules.optimizers import OPTIMIZERS, optimizer_factory
from numerics.members import Members

CASES = [  # family, one input's shape, input kind
    ("mlp", (64,), "tabular"),
    ("cnn", (1, 40), "signal"),
    ("resnet", (1, 40), "signal"),  # batch norm: each member's own statistics
    ("vit", (1, 40), "signal"),
    ("transformer", (40, 1), "sequence"),  # a non-persistent buffer (positions) stays out of the members' states
    ("lstm", (40, 1), "sequence"),  # no batching rule in torch: one member after another
]
K, BATCH, STEPS = 3, 16, 20


@pytest.fixture
def float64():
    """In double precision the only differences left are the members' mixing, if any: float32's
    reassociation (a grouped convolution sums in another order) drifts by ~1e-4 over 20 Adam steps."""
    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(before)


@pytest.mark.parametrize("family, shape, kind", CASES, ids=[c[0] for c in CASES])
def test_members_follow_their_lone_runs_step_by_step(float64, family, shape, kind):
    nets = []
    for seed in range(K):
        torch.manual_seed(seed)
        nets.append(build_net(family, shape, kind, 10))
    alone = [copy.deepcopy(n) for n in nets]
    members = Members(nets)
    assert members.vectorized == (family != "lstm")
    assert list(members.member_state(0)) == list(nets[0].state_dict())
    opt = torch.optim.Adam(members.parameters(), 1e-3)
    opts = [torch.optim.Adam(n.parameters(), 1e-3) for n in alone]
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(K, BATCH, *shape, generator=gen), torch.randint(0, 10, (K, BATCH), generator=gen)  # each member's own
    together, separate = [], []
    for _ in range(STEPS):
        per = nn.functional.cross_entropy(members(x).flatten(0, 1), y.flatten(), reduction="none").view(K, BATCH).mean(1)
        opt.zero_grad()
        per.sum().backward()  # the sum keeps the members' gradients apart
        opt.step()
        together.append(per.detach())
        row = []
        for net, o, xi, yi in zip(alone, opts, x, y):
            loss = nn.functional.cross_entropy(net(xi), yi)
            o.zero_grad()
            loss.backward()
            o.step()
            row.append(loss.detach())
        separate.append(torch.stack(row))
    together, separate = torch.stack(together), torch.stack(separate)  # (steps, K)
    assert (together[-1] < together[0]).all()  # each learns its batch
    torch.testing.assert_close(together, separate, rtol=1e-9, atol=1e-12)
    for i, net in enumerate(alone):
        lone = members.member(i, like=build_net(family, shape, kind, 10))  # a fresh network of the family takes member i
        for (name, mine), theirs in zip(lone.state_dict().items(), net.state_dict().values()):
            # atol 1e-10: attention's key bias has a zero gradient in exact arithmetic (softmax ignores a
            # shift), so Adam's steps on it are rounding noise (3.5e-12 apart here), in a lone run too
            torch.testing.assert_close(mine, theirs, rtol=1e-9, atol=1e-10, msg=name)


def test_members_keep_their_own_batch_norm_statistics_and_decay_only_weights():
    nets = [build_net("resnet", (1, 40), "signal", 10) for _ in range(2)]
    members = Members(nets)
    members(torch.stack([torch.zeros(8, 1, 40), torch.randn(8, 1, 40) * 5]))
    means = [name for name in members.buffer_names if name.endswith("running_var")]
    first = members.member_state(0)[means[0]]
    second = members.member_state(1)[means[0]]
    assert not torch.allclose(first, second)  # member 0 saw zeros, member 1 large inputs
    decayed = {name for name, p in members.named_parameters() if members.decays(name, p)}
    assert decayed and all(members.tensors()[0][n.replace("__", ".")].ndim >= 3 for n in decayed)
    assert not any(n.endswith("bias") for n in decayed)
    members.eval()
    assert not members._shape.training  # dropout and batch norm follow eval()


def test_members_refuse_networks_of_different_architectures_and_a_wrong_member_axis():
    with pytest.raises(ValueError, match="differ in architecture"):
        Members([build_net("mlp", (64,), "tabular", 10), build_net("mlp", (32,), "tabular", 10)])
    members = Members([build_net("mlp", (64,), "tabular", 10) for _ in range(2)])
    with pytest.raises(ValueError, match="first axis is 3, not the 2 members"):
        members(torch.zeros(3, 4, 64))


ELEMENTWISE = [e.name for e in OPTIMIZERS if e.info.get("elementwise")]


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_every_elementwise_optimizer_steps_each_member_as_alone(float64, name):
    """Every optimizer the registry declares elementwise (weight decay on: the members' matrices
    only, as a lone network's) moves each member's stacked tensors exactly as it moves a lone network."""
    make = optimizer_factory(name, lr=1.0 if name == "adadelta" else 1e-2, weight_decay=1e-2)
    nets = []
    for seed in range(K):
        torch.manual_seed(seed)
        nets.append(build_net("mlp", (5,), "tabular", 4, hidden=[16]))
    alone = [copy.deepcopy(n) for n in nets]
    members = Members(nets)
    opt, opts = make(members), [make(n) for n in alone]
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(K, BATCH, 5, generator=gen), torch.randint(0, 4, (K, BATCH), generator=gen)
    for _ in range(5):
        opt.zero_grad()
        nn.functional.cross_entropy(members(x).flatten(0, 1), y.flatten(), reduction="none").view(K, BATCH).mean(1).sum().backward()
        opt.step()
        for net, o, xi, yi in zip(alone, opts, x, y):
            o.zero_grad()
            nn.functional.cross_entropy(net(xi), yi).backward()
            o.step()
    for i, net in enumerate(alone):
        for (n, mine), theirs in zip(members.member_state(i).items(), net.state_dict().values()):
            torch.testing.assert_close(mine, theirs, rtol=1e-9, atol=1e-12, msg=f"{name}: {n}")
        assert not torch.equal(members.member_state(i)["layers.1.weight"], nets[i].state_dict()["layers.1.weight"])  # it moved
