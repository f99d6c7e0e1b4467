"""Start-up, as a user feels it (not a test): the default run as a whole process against a
hand-written script doing the same training — digits, the same split sizes, z-scored inputs, an
MLP 64→1024→10, Adam 1e-3, batch 64, 20 epochs, then the test accuracy. Both run as fresh
processes, interleaved, ``--repeats`` times; the table is the median wall time of each and their
ratio. ``python benchmarks/startup.py [--repeats 5]`` writes benchmarks/results/startup.md."""

from __future__ import annotations

import argparse
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

HAND = """
import numpy as np, torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
torch.manual_seed(0)
x, y = load_digits(return_X_y=True)
x = x.astype(np.float32); y = y.astype(np.int64)
x_pool, x_test, y_pool, y_test = train_test_split(x, y, test_size=0.2, stratify=y, random_state=0)
x_train, x_val, y_train, y_val = train_test_split(x_pool, y_pool, test_size=0.125, stratify=y_pool, random_state=0)
mean, std = x_train.mean(0), x_train.std(0) + 1e-8
tr = torch.from_numpy((x_train - mean) / std), torch.from_numpy(y_train)
te = torch.from_numpy((x_test - mean) / std), torch.from_numpy(y_test)
net = torch.nn.Sequential(torch.nn.Linear(64, 1024), torch.nn.ReLU(), torch.nn.Linear(1024, 10))
opt = torch.optim.Adam(net.parameters(), lr=1e-3)
for epoch in range(20):
    order = torch.randperm(len(tr[1]))
    for i in range(0, len(order), 64):
        idx = order[i:i + 64]
        loss = torch.nn.functional.cross_entropy(net(tr[0][idx]), tr[1][idx])
        opt.zero_grad(); loss.backward(); opt.step()
with torch.no_grad():
    print("test acc", (net(te[0]).argmax(1) == te[1]).float().mean().item())
"""


def wall(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, capture_output=True, text=True, cwd=tempfile.gettempdir(), check=True)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "startup.md")
    args = parser.parse_args()
    run = [sys.executable, str(ROOT / "experiments" / "run.py"), "callbacks.progress=none"]
    cases = {
        "hand-written loop (python -c ...)": lambda: wall([sys.executable, "-c", HAND]),
        "python experiments/run.py (the default run)": lambda: wall([*run, f"hydra.run.dir={tempfile.mkdtemp()}/run"]),
        "python experiments/run.py callbacks.figures=false": lambda: wall(
            [*run, "callbacks.figures=false", f"hydra.run.dir={tempfile.mkdtemp()}/run"]
        ),
    }
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(args.repeats):  # interleaved: a slow moment of the machine hits every case alike
        for name, go in cases.items():
            times[name].append(go())
    hand = statistics.median(times[next(iter(cases))])
    lines = [
        "# Start-up: the default run against a hand-written loop, whole processes",
        "",
        f"`python benchmarks/startup.py --repeats {args.repeats}` on {platform.machine()}, Python {platform.python_version()}; "
        "median wall time of fresh processes, interleaved.",
        "",
        "| process | median s | all runs s | ratio to the hand-written loop |",
        "|---|---|---|---|",
    ]
    for name, ts in times.items():
        m = statistics.median(ts)
        lines.append(f"| {name} | {m:.2f} | {', '.join(f'{t:.2f}' for t in ts)} | {m / hand:.2f}× |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
