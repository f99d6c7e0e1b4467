"""The training batches of K seeded runs at once (``seeds=[...]``): batch b is (K, B, ...), its row
i the batch b that the run with ``seed=seeds[i]`` draws alone. Each row has that seed's epoch
permutation (``EpochPermutation``, seeded by (seed, epoch)) and its own augmentation and
Mixup/CutMix (``TrainTransform`` with that seed); the members share the split and its tensors.

``rows`` (K, n) gives each member a training set of its own, as rows of the shared tensors (a
bootstrap resample, a disjoint part, its own draw of data; repeats allowed): member i's epoch is
its seed's permutation of ``rows[i]``, as a lone run on ``tensors[rows[i]]`` would draw it."""

from __future__ import annotations

import math
from typing import Iterator, Sequence

import torch

from datamodules.device_loader import DeviceBatchLoader, EpochPermutation


class _Samplers:
    """What Lightning calls ``set_epoch`` on: every member's permutation."""

    def __init__(self, samplers):
        self.samplers = samplers

    def set_epoch(self, epoch: int) -> None:
        for s in self.samplers:
            s.set_epoch(epoch)


class MemberBatchLoader:
    def __init__(
        self,
        tensors: tuple[torch.Tensor, ...],
        batch_size: int,
        seeds: Sequence[int],
        shuffle: bool,
        transforms=None,
        rows: torch.Tensor | None = None,
    ):
        transforms = transforms or [None] * len(seeds)
        if rows is not None and (rows.ndim != 2 or rows.shape[0] != len(seeds)):
            raise ValueError(f"MemberBatchLoader: rows of shape {tuple(rows.shape)}, not (members={len(seeds)}, n)")
        self.tensors, self.batch_size, self.rows = tensors, batch_size, rows
        self.n = len(tensors[0]) if rows is None else rows.shape[1]
        self.loaders = None
        if any(t is not None for t in transforms):  # each member's epoch transformed on its own, from its own rows
            own = [tensors] * len(seeds) if rows is None else [tuple(t[r.to(t.device)] for t in tensors) for r in rows]
            self.loaders = [DeviceBatchLoader(o, batch_size, shuffle, seed=s, transform=t) for o, s, t in zip(own, seeds, transforms)]
            samplers = [loader.sampler for loader in self.loaders]
        else:
            samplers = [EpochPermutation(self.n, shuffle, s) for s in seeds]
        self.samplers = samplers
        self.sampler = _Samplers(samplers)
        self.batch_sampler = None  # Lightning inspects both attributes, like a DataLoader's

    def __len__(self) -> int:
        return math.ceil(self.n / self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, ...]]:
        if self.loaders is not None:
            for batches in zip(*self.loaders):
                yield tuple(torch.stack(parts) for parts in zip(*batches))
            return
        device = self.tensors[0].device
        order = torch.stack([s.indices() for s in self.samplers]).to(device)  # (K, n)
        if self.rows is not None:
            order = torch.gather(self.rows.to(device), 1, order)  # member i's permutation of its own rows
        for b in range(len(self)):
            idx = order[:, b * self.batch_size : (b + 1) * self.batch_size]
            yield tuple(t[idx] for t in self.tensors)  # one gather: (K, B, ...)
