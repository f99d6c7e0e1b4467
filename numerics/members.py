"""K networks of one architecture, each with its own weights, applied at once: the members of a
seeded fit. The networks stay plain ``nn.Module``s: their parameters and buffers are stacked
(``torch.func.stack_module_state``, a leading member axis of size K) and the architecture is called
with each member's tensors (``torch.func.functional_call``) under ``torch.func.vmap``, which turns a
member's matmuls and convolutions into batched and grouped ones. Inputs and outputs carry the member
axis first: (K, B, ...) → (K, B, ...).

Members never interact: each has its own weights, batch-norm statistics and (with an elementwise
optimizer over the stacked tensors: SGD, momentum, Adam, ...) its own optimizer state, so member i
follows the run it would make alone. Dropout draws differ from a lone run's (vmap draws each member's
mask from one generator, ``randomness="different"``). Recurrent layers (``nn.RNN``, ``nn.LSTM``,
``nn.GRU``) have no batching rule in torch; their members are called one after another, with the same
stacked tensors (``vectorized`` says which way).

Measured on the 2-core CPU (``benchmarks/members_step.py`` → ``benchmarks/results/members_step.md``),
one Adam step of K members against K separate modules and optimizers: K=8 MLP 1.36×, reference CNN
1.48×, ResNet 1.49×, ViT 1.33×; K=16 1.83×, 1.56×, 1.41×, 1.18×; at K=1 the stacking costs
(0.64–0.83×). Slower than separate modules: the sequence transformer (0.95× at K=8, 0.53× at K=16:
its attention falls back to a per-member loop under vmap on the CPU) and LSTM (1.06×, one after
another). Repeated runs of the script differ by up to ±15%. In a Lightning fit K separate fits also
pay the per-step machinery K times, which one fit of K members pays once.
"""

from __future__ import annotations

import copy
from typing import Sequence

import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

#: layers torch.func.vmap cannot batch: their members run one after another
UNBATCHED = (nn.RNNBase,)


def _key(name: str) -> str:
    return name.replace(".", "__")  # a registered name may not hold dots


class Members(nn.Module):
    """K = len(nets) networks of one architecture as one module: ``forward`` takes (K, B, ...)."""

    def __init__(self, nets: Sequence[nn.Module], vectorized: bool | None = None):
        super().__init__()
        if not nets:
            raise ValueError("Members: needs at least one network")
        shapes = [{n: tuple(p.shape) for n, p in net.state_dict().items()} for net in nets]
        if any(s != shapes[0] for s in shapes[1:]):
            raise ValueError("Members: the networks differ in architecture (their state dicts' names or shapes)")
        params, buffers = stack_module_state(list(nets))
        self.k = len(nets)
        self.state_names = list(nets[0].state_dict())  # what a lone network saves (not its non-persistent buffers)
        self.param_names, self.buffer_names = list(params), list(buffers)
        for name, value in params.items():
            self.register_parameter(_key(name), nn.Parameter(value.detach().clone()))
        for name, value in buffers.items():
            self.register_buffer(_key(name), value.detach().clone())
        # the architecture without tensors of its own, kept outside the module tree (not a submodule:
        # its meta tensors must not show up among the parameters or in the state dict)
        object.__setattr__(self, "_shape", copy.deepcopy(nets[0]).to("meta"))
        self.vectorized = not any(isinstance(m, UNBATCHED) for m in nets[0].modules()) if vectorized is None else vectorized

    def train(self, mode: bool = True) -> "Members":
        super().train(mode)
        self._shape.train(mode)  # dropout and batch norm follow the members' mode
        return self

    def tensors(self) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """The stacked parameters and buffers by the network's own names, each (K, ...)."""
        return (
            {n: getattr(self, _key(n)) for n in self.param_names},
            {n: getattr(self, _key(n)) for n in self.buffer_names},
        )

    def forward(self, x: torch.Tensor, shared: bool = False, params: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        """(K, B, ...) → (K, B, ...), member i on x[i]; ``shared``: one (B, ...) input that every
        member sees (validation and test), without copying it K times. ``params`` replaces the
        stacked parameters for this call (e.g. the weights plus noise), by the network's own names."""
        if not shared and x.shape[0] != self.k:
            raise ValueError(f"Members: input's first axis is {x.shape[0]}, not the {self.k} members")
        if self._shape.training != self.training:  # Lightning restores modes by setting ``training`` flags, not through train()
            self._shape.train(self.training)
        stacked, buffers = self.tensors()
        params = stacked if params is None else params
        if self.vectorized:

            def one(p, b, xi):
                return functional_call(self._shape, (p, b), (xi,))

            return vmap(one, in_dims=(0, 0, None if shared else 0), randomness="different")(params, buffers, x)
        outs = []
        for i in range(self.k):
            mine = {n: t[i] for n, t in params.items()}, {n: t[i] for n, t in buffers.items()}
            outs.append(functional_call(self._shape, mine, (x if shared else x[i],)))
        return torch.stack(outs)

    def load_members(self, states: Sequence[dict[str, torch.Tensor]]) -> None:
        """Each member's weights from a lone network's state dict (``member_state``'s inverse)."""
        if len(states) != self.k:
            raise ValueError(f"Members: {len(states)} states for {self.k} members")
        params, buffers = self.tensors()
        with torch.no_grad():
            for name, t in {**params, **buffers}.items():
                if name in self.state_names:
                    t.copy_(torch.stack([s[name] for s in states]).to(t))

    @staticmethod
    def decays(name: str, parameter: nn.Parameter) -> bool:
        """Weight decay as for one network (its matrices and kernels, not its biases and norms): the
        member axis is not one of the weight's own (``lightning_modules/optimizers.py::param_groups`` asks)."""
        return parameter.ndim - 1 >= 2

    def member_state(self, i: int) -> dict[str, torch.Tensor]:
        """Member ``i``'s state dict, by the network's own names: it loads into a lone network."""
        params, buffers = self.tensors()
        stacked = {**params, **buffers}
        return {n: stacked[n][i].detach().clone() for n in self.state_names}

    def member(self, i: int, like: nn.Module) -> nn.Module:
        """A lone network (a copy of ``like``, the same architecture) holding member ``i``'s weights."""
        net = copy.deepcopy(like)
        net.load_state_dict(self.member_state(i))
        return net
