"""Benchmark of ``seeds=[...]`` (not a test): the wall time of one K-member fit against K sequential
in-process fits of the same config (``seed=0 … K-1``), K ∈ {1, 4, 8, 16}, through the real
pipeline (``experiments/train.py``: data, build, fit with its callbacks and TensorBoard, test, the
run's files).

    python benchmarks/members.py               # writes benchmarks/results/members.md (~20 min on 2 cores)
    python benchmarks/members.py --repeats 1 --ks 1 4

Configs: the default run (MLP on digits, 20 epochs) and the reference CNN on MNIST-1D (20 epochs),
both as ``python experiments/run.py`` runs them (progress bar off). Each repeat times every K-member
fit and 16 single fits, one after another; "K sequential" is the sum of the first K single fits of
that repeat. Medians over ``--repeats`` repeats after a warm-up run.
"""

from __future__ import annotations

import argparse
import logging
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

CONFIGS = {
    "MLP, digits (the default run)": (),
    "reference CNN, MNIST-1D": ("model=cnn", "data=mnist1d"),
}
BASE = ("callbacks.progress=none",)


def compose(*overrides: str):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(config_dir=str(ROOT / "experiments" / "configs"), version_base="1.3"):
        return hydra_compose(config_name="train", overrides=[*BASE, *overrides])


def fit(*overrides: str) -> float:
    from experiments.train import train

    cfg = compose(*overrides)
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "run"
        run_dir.mkdir()
        start = time.perf_counter()
        train(cfg, run_dir, report=False)
        return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--ks", type=int, nargs="+", default=[1, 4, 8, 16])
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "members.md")
    args = parser.parse_args()
    logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
    logging.getLogger("dl_foundations").setLevel(logging.ERROR)
    lines = [
        "# K seeds in one fit against K sequential fits (`benchmarks/members.py`)",
        "",
        f"{platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}; whole runs through "
        f"`experiments/train.py` (data, fit, test, files), progress bar off; medians of {args.repeats} repeats.",
        "",
        "| config | K | K-member fit (s) | K sequential fits (s) | speed-up |",
        "|---|---|---|---|---|",
    ]
    for label, overrides in CONFIGS.items():
        fit(*overrides, "seed=0")  # warm-up: imports, data cache
        members = {k: [] for k in args.ks}
        sequential = {k: [] for k in args.ks}
        for repeat in range(args.repeats):
            for k in args.ks:
                members[k].append(fit(*overrides, f"seeds=[{','.join(map(str, range(k)))}]"))
            singles = [fit(*overrides, f"seed={s}") for s in range(max(args.ks))]
            for k in args.ks:
                sequential[k].append(sum(singles[:k]))
            print(f"{label} repeat {repeat + 1}: " + ", ".join(f"K={k} {members[k][-1]:.1f}/{sequential[k][-1]:.1f}s" for k in args.ks))
        for k in args.ks:
            m, s = statistics.median(members[k]), statistics.median(sequential[k])
            lines.append(f"| {label} | {k} | {m:.1f} | {s:.1f} | {s / m:.2f}× |")
    write_markdown(args.out, lines + [""])
    return 0


if __name__ == "__main__":
    sys.exit(main())
