"""Benchmark of the data path (not a test): device-resident batches against a DataLoader, and the
cost of augmentation + Mixup/CutMix relative to a training step.

    python benchmarks/data_path.py            # writes benchmarks/results/data_path.md

Each figure is the median of ``--repeats`` timings, on one thread-setting as the machine has it.
"""

from __future__ import annotations

import argparse
import platform
import sys
from pathlib import Path

import torch
from torch.utils.data import DataLoader, TensorDataset

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import interleaved_medians, write_markdown  # noqa: E402
from datamodules.augment import policy_for  # noqa: E402
from datamodules.device_loader import DeviceBatchLoader  # noqa: E402
from datamodules.mixing import MixConfig  # noqa: E402
from datamodules.tensor_datamodule import TensorDataModule  # noqa: E402
from datamodules.train_transform import TrainTransform  # noqa: E402


def epoch_of_batches(loader) -> None:
    for _ in loader:
        pass


def loading(name: str, batch_size: int, repeats: int, **kwargs) -> dict:
    dm = TensorDataModule(name, batch_size=batch_size, **kwargs)
    dm.setup()
    x, y = dm.tensors("train")
    ours = DeviceBatchLoader((x, y), batch_size, shuffle=True)
    epoch = iter(range(10**9))

    def device_epoch():
        ours.sampler.set_epoch(next(epoch))
        epoch_of_batches(ours)

    baseline = DataLoader(TensorDataset(x, y), batch_size=batch_size, shuffle=True)
    t_ours, t_base = interleaved_medians((device_epoch, lambda: epoch_of_batches(baseline)), repeats)
    return {
        "data": name,
        "samples": len(y),
        "batch": batch_size,
        "device_ms": t_ours * 1e3,
        "dataloader_ms": t_base * 1e3,
        "ratio": t_ours / t_base,
    }


class SmallCNN(torch.nn.Module):
    def __init__(self, side: int = 8):
        super().__init__()
        self.net = torch.nn.Sequential(
            torch.nn.Conv2d(1, 16, 3, padding=1),
            torch.nn.ReLU(),
            torch.nn.Conv2d(16, 32, 3, padding=1),
            torch.nn.ReLU(),
            torch.nn.MaxPool2d(2),
            torch.nn.Flatten(),
            torch.nn.Linear(32 * (side // 2) ** 2, 10),
        )

    def forward(self, x):
        return self.net(x)


def step_overhead(model_name: str, repeats: int, side: int = 8) -> dict:
    """Training steps over one epoch of digits batches from DeviceBatchLoader, with and without
    augmentation + Mixup/CutMix (applied per epoch by TrainTransform, as the DataModule does).
    ``side=28``: the digits upsampled to MNIST's 28 × 28, where the image policy adds the small affine."""
    torch.manual_seed(0)
    net = (
        SmallCNN(side)
        if model_name.startswith("small CNN")
        else torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(side * side, 1024), torch.nn.ReLU(), torch.nn.Linear(1024, 10))
    )
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    dm = TensorDataModule("digits")
    dm.setup()
    data = dm.tensors("train")
    if side != 8:
        data = (torch.nn.functional.interpolate(data[0], size=(side, side), mode="bilinear"), data[1])
    transform = TrainTransform(
        policy_for("image", (1, side, side), flip=False), MixConfig(mixup_alpha=0.2, cutmix_alpha=1.0, switch_prob=0.5), 10, seed=0
    )
    plain, mixed = DeviceBatchLoader(data, 64, shuffle=True), DeviceBatchLoader(data, 64, shuffle=True, transform=transform)
    epochs = iter(range(10**9))

    def epoch(loader, train: bool):
        loader.sampler.set_epoch(next(epochs))
        for xb, yb in loader:
            if train:
                loss = torch.nn.functional.cross_entropy(net(xb), yb)
                opt.zero_grad()
                loss.backward()
                opt.step()

    fns = (lambda: epoch(plain, True), lambda: epoch(mixed, True), lambda: epoch(plain, False), lambda: epoch(mixed, False))
    t_plain, t_with, d_plain, d_with = (t / len(plain) for t in interleaved_medians(fns, repeats))
    return {
        "model": model_name,
        "step_us": t_plain * 1e6,
        "with_us": t_with * 1e6,
        "transforms_us": (d_with - d_plain) * 1e6,
        "overhead": (t_with - t_plain) / t_plain,
        "share": (d_with - d_plain) / t_plain,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=101)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "data_path.md")
    args = parser.parse_args()
    load_rows = [loading("digits", 64, args.repeats), loading("mnist1d", 100, args.repeats, test_fraction=0.0)]
    step_rows = [
        step_overhead("MLP 64-1024-10", args.repeats),
        step_overhead("small CNN", args.repeats),
        step_overhead("small CNN, 28 × 28 (with the affine)", max(11, args.repeats // 5), side=28),
    ]
    lines = [
        "# Data path benchmark",
        "",
        f"`python benchmarks/data_path.py` on {platform.machine()}, {torch.get_num_threads()} torch threads, torch "
        f"{torch.__version__}, CPU.",
        "",
        "## One epoch of training batches: device-resident indexing vs DataLoader(TensorDataset, shuffle=True)",
        "",
        "| data | train samples | batch | device loader (ms) | DataLoader (ms) | ratio (target ≤ 0.1) |",
        "|---|---|---|---|---|---|",
        *[
            f"| {r['data']} | {r['samples']} | {r['batch']} | {r['device_ms']:.2f} | {r['dataloader_ms']:.2f} | {r['ratio']:.3f} |"
            for r in load_rows
        ],
        "",
        "## Augmentation + Mixup/CutMix (both on, switch 0.5) per training step (Adam, digits, batch 64, an epoch of 20 steps)",
        "",
        "Both are applied once per epoch to the whole epoch on the device (`TrainTransform`), then served as batch slices.",
        "",
        "The last column divides the transforms' own time (timed without the model) by the plain step: the",
        "end-to-end difference beside it carries the step's run-to-run noise, a few percent at these sizes.",
        "",
        "| model | step (µs) | step with transforms (µs) | difference | transforms per step (µs) | transforms / step (target ≤ 10%) |",
        "|---|---|---|---|---|---|",
        *[
            f"| {r['model']} | {r['step_us']:.0f} | {r['with_us']:.0f} | {100 * r['overhead']:+.1f}% | {r['transforms_us']:.0f} | "
            f"{100 * r['share']:.1f}% |"
            for r in step_rows
        ],
        "",
    ]
    write_markdown(args.out, lines)


if __name__ == "__main__":
    main()
