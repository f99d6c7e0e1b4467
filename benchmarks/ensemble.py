"""Benchmark of the vectorized ensemble trainer (not a test): K members trained at once with grouped
layers against K sequential hand-written loops doing the same work, and against K sequential
template runs (experiments/train.py, in one process).

    python benchmarks/ensemble.py            # writes benchmarks/results/ensemble.md

Every member: an MLP 64 → width → 10 on the digits training split (1,257 samples), Adam 1e-3,
batch 64, ``--epochs`` epochs. Times are medians of ``--repeats`` (the template runs: one repeat of K runs).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.common import write_markdown  # noqa: E402
from lightning_modules.optimizers import optimizer_factory  # noqa: E402
from numerics.ensemble import train_ensemble  # noqa: E402

adam = optimizer_factory("adam", lr=1e-3)  # as the hand-written loop it is compared with


def digits():
    from datamodules.tensor_datamodule import TensorDataModule

    dm = TensorDataModule("digits")
    dm.setup()
    x, y = dm.tensors("train")
    return x.flatten(1), y


def hand_loop(x, y, seed: int, width: int, epochs: int, batch: int = 64) -> None:
    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Linear(x.shape[1], width), torch.nn.ReLU(), torch.nn.Linear(width, 10))
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=g)
        for s in range(len(x) // batch):
            idx = order[s * batch : (s + 1) * batch]
            loss = torch.nn.functional.cross_entropy(net(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()


def timed(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def template_runs(k: int, width: int, epochs: int) -> float:
    from hydra import compose, initialize_config_dir

    from experiments.train import train

    with initialize_config_dir(config_dir=str(ROOT / "experiments" / "configs"), version_base="1.3"):
        cfgs = [
            compose(
                config_name="train",
                overrides=[
                    f"model.hidden=[{width}]",
                    f"trainer.max_epochs={epochs}",
                    f"seed={i}",
                    "logger=none",
                    "callbacks.progress=none",
                    "callbacks.figures=false",
                    "data.val_fraction=0",
                    "test_ckpt=last",
                ],
            )
            for i in range(k + 1)
        ]
    with tempfile.TemporaryDirectory() as tmp:
        train(cfgs[-1], Path(tmp) / "warm", report=False)  # imports and first-call costs out of the timing
        t0 = time.perf_counter()
        for i, cfg in enumerate(cfgs[:k]):
            train(cfg, Path(tmp) / f"run{i}", report=False)
        return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "ensemble.md")
    args = parser.parse_args()
    x, y = digits()
    rows = []
    for width in (8, 32, 128):
        for k in (4, 16, 64):
            xs, ys = x.expand(k, -1, -1), y.expand(k, -1)
            t_vec = timed(
                lambda: train_ensemble(xs, ys, list(range(k)), [width], 10, "classification", args.epochs, 64, adam), args.repeats
            )
            t_seq = timed(lambda: [hand_loop(x, y, i, width, args.epochs) for i in range(k)], max(1, args.repeats // 2))
            rows.append((width, k, t_vec, t_seq))
            print(f"width {width} K {k}: vectorized {t_vec:.3f} s, sequential loop {t_seq:.3f} s, {t_seq / t_vec:.1f}×", flush=True)
    t_template = template_runs(16, 32, args.epochs)
    t_vec16 = next(r[2] for r in rows if r[0] == 32 and r[1] == 16)
    lines = [
        "# Vectorized ensembles",
        "",
        f"`python benchmarks/ensemble.py` on {platform.machine()}, {torch.get_num_threads()} torch threads, torch "
        f"{torch.__version__}, CPU. "
        f"Each member: MLP 64 → width → 10 on digits (1,257 training samples), Adam 1e-3, batch 64, {args.epochs} epochs.",
        "",
        "| width | K | vectorized (s) | K sequential hand-written loops (s) | speed-up |",
        "|---|---|---|---|---|",
        *[f"| {w} | {k} | {tv:.3f} | {ts:.3f} | {ts / tv:.1f}× |" for w, k, tv, ts in rows],
        "",
        f"Against the template: 16 sequential runs of `experiments/train.py` (width 32, same epochs, no validation, logger, "
        f"figures or progress; imports paid before timing) took {t_template:.2f} s; the vectorized K = 16 ensemble {t_vec16:.3f} s: "
        f"{t_template / t_vec16:.0f}× faster (target ≥ 8×).",
        "",
    ]
    write_markdown(args.out, lines)


if __name__ == "__main__":
    main()
