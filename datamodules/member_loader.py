"""The training batches of K seeded runs at once (``seeds=[...]``): batch b is (K, B, ...), its row
i the batch b that the run with ``seed=seeds[i]`` draws alone. Each row has that seed's epoch
permutation (``EpochPermutation``, seeded by (seed, epoch)) and its own augmentation and
Mixup/CutMix (``TrainTransform`` with that seed); the members share the split and its tensors."""

from __future__ import annotations

from typing import Iterator, Sequence

import torch

from datamodules.device_loader import DeviceBatchLoader


class _Samplers:
    """What Lightning calls ``set_epoch`` on: every member's permutation."""

    def __init__(self, samplers):
        self.samplers = samplers

    def set_epoch(self, epoch: int) -> None:
        for s in self.samplers:
            s.set_epoch(epoch)


class MemberBatchLoader:
    def __init__(self, tensors: tuple[torch.Tensor, ...], batch_size: int, seeds: Sequence[int], shuffle: bool, transforms=None):
        transforms = transforms or [None] * len(seeds)
        self.loaders = [DeviceBatchLoader(tensors, batch_size, shuffle, seed=s, transform=t) for s, t in zip(seeds, transforms)]
        self.tensors, self.batch_size = tensors, batch_size
        self.sampler = _Samplers([loader.sampler for loader in self.loaders])
        self.batch_sampler = None  # Lightning inspects both attributes, like a DataLoader's

    def __len__(self) -> int:
        return len(self.loaders[0])

    def __iter__(self) -> Iterator[tuple[torch.Tensor, ...]]:
        if any(loader.transform is not None for loader in self.loaders):  # each member's epoch transformed on its own
            for batches in zip(*self.loaders):
                yield tuple(torch.stack(parts) for parts in zip(*batches))
            return
        device = self.tensors[0].device
        order = torch.stack([loader.sampler.indices() for loader in self.loaders]).to(device)  # (K, N)
        for b in range(len(self)):
            idx = order[:, b * self.batch_size : (b + 1) * self.batch_size]
            yield tuple(t[idx] for t in self.tensors)  # one gather: (K, B, ...)
