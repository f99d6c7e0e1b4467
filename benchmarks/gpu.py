"""The GPU benchmark (not a test): on a CUDA machine, the numbers a GPU user asks about, in one
script of a few minutes; without CUDA it says so and exits 0 (CI has no GPU).

    python benchmarks/gpu.py                 # writes benchmarks/results/gpu.md
    python benchmarks/gpu.py --quick         # fewer epochs and repeats: a check that it all runs

1. The default run (MLP on digits) and the reference CNN on MNIST-1D as whole runs through
   ``experiments/train.py`` with ``trainer=gpu``: wall time, test accuracy.
2. Steps per second of the reference CNN and ResNet on MNIST-1D: Lightning's fit of the template
   module against a hand-written loop (same network, weights, batches, optimizer), both on the GPU.
3. ``seeds=[...]``: the reference CNN's K-member fit against K sequential fits, K ∈ {1, 8, 32}
   (the target: K = 32 at ≥ 15× the 32 sequential fits).
4. ``trainer.precision=bf16-mixed`` and ``trainer.compile=true`` on the reference CNN (whole runs).
"""

from __future__ import annotations

import argparse
import copy
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.common import write_markdown  # noqa: E402
from benchmarks.members import compose, fit  # noqa: E402

CNN = ("model=cnn", "data=mnist1d")
RESNET = ("model=resnet", "data=mnist1d")


def whole_run(*overrides: str) -> tuple[float, float]:
    """(wall seconds, test accuracy) of one run with ``trainer=gpu``."""
    import tempfile

    from experiments.train import train

    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "run"
        run_dir.mkdir()
        start = time.perf_counter()
        record = train(compose("trainer=gpu", *overrides), run_dir, report=False)
        wall = time.perf_counter() - start
    return wall, record.get("test/acc", float("nan"))


def steps_per_second(overrides: tuple[str, ...], epochs: int) -> tuple[float, float]:
    """(template, hand-written loop) training steps per second on the GPU, over ``epochs`` after one warm-up epoch."""
    import pytorch_lightning as pl

    from datamodules.device_loader import DeviceBatchLoader
    from experiments.build import build_datamodule, build_module

    cfg = compose("trainer=gpu", "data.val_fraction=0", *overrides)
    pl.seed_everything(cfg.seed, verbose=False)
    dm = build_datamodule(cfg)
    module = build_module(cfg, dm)
    start = copy.deepcopy(module.net.state_dict())
    trainer_kw = dict(accelerator="gpu", devices=1, logger=False, enable_checkpointing=False, enable_progress_bar=False)
    trainer_kw.update(enable_model_summary=False, limit_val_batches=0, num_sanity_val_steps=0)
    pl.Trainer(max_epochs=1, **trainer_kw).fit(module, datamodule=dm)  # warm-up (kernels, allocator)
    module.net.load_state_dict(start)
    t0 = time.perf_counter()
    pl.Trainer(max_epochs=epochs, **trainer_kw).fit(module, datamodule=dm)
    torch.cuda.synchronize()
    template = time.perf_counter() - t0

    net = copy.deepcopy(module.net).cuda()
    net.load_state_dict(start)
    optimizer = module.optimizer_factory(net)
    x, y = (t.cuda() for t in dm.tensors("train"))
    loader = DeviceBatchLoader((x, y), cfg.data.batch_size, shuffle=True, seed=cfg.seed)
    steps = len(loader) * epochs
    for epoch in range(epochs + 1):  # the first: warm-up
        if epoch == 1:
            torch.cuda.synchronize()
            t0 = time.perf_counter()
        loader.sampler.set_epoch(epoch)
        for xb, yb in loader:
            loss = module.loss_fn(net(xb), yb)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    torch.cuda.synchronize()
    loop = time.perf_counter() - t0
    return steps / template, steps / loop


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "gpu.md")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("benchmarks/gpu.py: no CUDA device visible to torch; skipped, nothing written")
        return 0
    import logging

    logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
    logging.getLogger("dl_foundations").setLevel(logging.ERROR)
    epochs, repeats = (2, 1) if args.quick else (5, 3)
    short = (f"trainer.max_epochs={epochs}",)
    lines = [
        "# GPU (`benchmarks/gpu.py`)",
        "",
        f"{torch.cuda.get_device_name(0)}; {platform.machine()}, torch {torch.__version__}; medians of {repeats}.",
        "",
        "| what | measured |",
        "|---|---|",
    ]
    for label, overrides in (("default run (MLP, digits, 20 epochs)", ()), ("reference CNN, MNIST-1D, 20 epochs", CNN)):
        runs = [whole_run(*overrides) for _ in range(repeats)]
        wall = statistics.median(r[0] for r in runs)
        lines.append(f"| {label}: whole run | {wall:.1f} s, test acc {runs[0][1]:.4f} |")
    for label, overrides in (("reference CNN", CNN), ("ResNet", RESNET)):
        template, loop = steps_per_second(overrides, epochs)
        lines.append(f"| {label} steps/s: template vs hand-written loop | {template:,.0f} vs {loop:,.0f} ({loop / template:.2f}×) |")
    for k in (1, 8, 32):
        members = statistics.median(fit("trainer=gpu", *CNN, *short, f"seeds=[{','.join(map(str, range(k)))}]") for _ in range(repeats))
        sequential = sum(fit("trainer=gpu", *CNN, *short, f"seed={s}") for s in range(k))
        lines.append(f"| seeds: reference CNN, K = {k}, {epochs} epochs: one fit vs {k} sequential | {members:.1f} vs {sequential:.1f} s "
                     f"({sequential / members:.1f}×) |")  # fmt: skip
    for extra in ("trainer.precision=bf16-mixed", "trainer.compile=true"):
        wall, acc = whole_run(*CNN, extra)
        lines.append(f"| reference CNN with `{extra}`: whole run | {wall:.1f} s, test acc {acc:.4f} |")
    write_markdown(args.out, lines + [""])
    return 0


if __name__ == "__main__":
    sys.exit(main())
