"""DDP scaling on this machine (not a test): the same training through ``trainer=ddp_cpu`` with 1
and 2 processes (gloo), training samples per second and the ratio.

    python benchmarks/scaling.py            # writes benchmarks/results/scaling.md

Samples/s counts every training sample of an epoch (all ranks together) over the epoch's time as
rank 0 reports it (``callbacks.progress=plain``), median over epochs 2…E, then over repetitions.
Each rank trains on its shard with the configured per-rank batch, so 2 processes take half the
steps per epoch, each on a batch of the same size.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.common import write_markdown  # noqa: E402

CASES = {
    "reference CNN, mnist1d (4,000 signals), batch 100 per rank": (
        ["model=cnn", "data=mnist1d", "data.val_fraction=0", "data.batch_size=100"],
        4000,
    ),
    "ResNet, mnist1d (4,000 signals), batch 100 per rank": (
        ["model=resnet", "data=mnist1d", "data.val_fraction=0", "data.batch_size=100"],
        4000,
    ),
}
EPOCH = re.compile(r"^epoch (\d+)/\d+ .*\(([\d.]+) s\)$")


def run(overrides: list[str], devices: int, epochs: int) -> tuple[float, float]:
    """(median seconds per epoch over epochs 2…E, whole-process seconds)."""
    cmd = [
        sys.executable,
        str(ROOT / "experiments" / "run.py"),
        *overrides,
        "trainer=ddp_cpu",
        f"trainer.devices={devices}",
        f"trainer.max_epochs={epochs}",
        "callbacks.progress=plain",
        "callbacks.figures=false",
        "logger=none",
        "run_test=false",
        "test_ckpt=last",
        "hydra.run.dir=/tmp/dlf_bench_scaling",
    ]
    subprocess.run(["rm", "-rf", "/tmp/dlf_bench_scaling"], check=True)
    t0 = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, cwd="/tmp", env={**os.environ, "PYTHONWARNINGS": "ignore"})
    wall = time.perf_counter() - t0
    if out.returncode:
        raise RuntimeError(out.stderr[-2000:])
    epochs_s = [float(m.group(2)) for line in out.stdout.splitlines() if (m := EPOCH.match(line.strip())) and int(m.group(1)) > 1]
    return statistics.median(epochs_s), wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "scaling.md")
    args = parser.parse_args()
    lines = [
        "# DDP on the CPU: 1 against 2 processes",
        "",
        f"`python benchmarks/scaling.py` on {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}; "
        f"`trainer=ddp_cpu`, {args.epochs} epochs, median of {args.repeats} interleaved repetitions.",
        "",
        "| case | 1 process: samples/s | 2 processes: samples/s | speed-up | whole process, 1 / 2 (s) |",
        "|---|---|---|---|---|",
    ]
    for name, (overrides, samples) in CASES.items():
        one, two, walls = [], [], ([], [])
        for _ in range(args.repeats):
            for devices, acc, wall_acc in ((1, one, walls[0]), (2, two, walls[1])):
                epoch_s, wall = run(overrides, devices, args.epochs)
                acc.append(samples / epoch_s)
                wall_acc.append(wall)
        a, b = statistics.median(one), statistics.median(two)
        lines.append(
            f"| {name} | {a:,.0f} | {b:,.0f} | {b / a:.2f}× | {statistics.median(walls[0]):.1f} / {statistics.median(walls[1]):.1f} |"
        )
    write_markdown(args.out, lines + [""])


if __name__ == "__main__":
    main()
