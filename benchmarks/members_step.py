"""Benchmark of one optimizer step of K members (not a test): ``numerics/members.py`` (the
networks' stacked tensors under ``torch.func.vmap``, one Adam) against K separate modules with an
Adam each, for the template's own families: the first measurement of the seeds-in-one-fit work,
before whole fits.

    python benchmarks/members_step.py        # writes benchmarks/results/members_step.md

Each member: its family's defaults, random inputs of the shape given, 10 classes, cross-entropy,
Adam 1e-3; medians of ``--repeats`` interleaved steps after a warm-up, torch's threads as set.
"""

from __future__ import annotations

import argparse
import copy
import platform
import sys
from pathlib import Path

import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.common import interleaved_medians, write_markdown  # noqa: E402
from lightning_modules.nets import build_net  # noqa: E402
from numerics.members import Members  # noqa: E402

CASES = [  # family, one input's shape, input kind, batch
    ("mlp", (64,), "tabular", 64),
    ("cnn", (1, 40), "signal", 100),
    ("resnet", (1, 40), "signal", 100),
    ("vit", (1, 40), "signal", 100),
    ("transformer", (40, 1), "sequence", 100),
    ("lstm", (40, 1), "sequence", 100),
]


def steps(family: str, shape: tuple, kind: str, batch: int, k: int):
    nets = []
    for seed in range(k):
        torch.manual_seed(seed)
        nets.append(build_net(family, shape, kind, 10))
    x, y = torch.randn(k, batch, *shape), torch.randint(0, 10, (k, batch))
    alone = [copy.deepcopy(n) for n in nets]
    opts = [torch.optim.Adam(n.parameters(), 1e-3) for n in alone]
    members = Members(nets)
    opt = torch.optim.Adam(members.parameters(), 1e-3)

    def separate():
        for net, o, xi, yi in zip(alone, opts, x, y):
            o.zero_grad()
            nn.functional.cross_entropy(net(xi), yi).backward()
            o.step()

    def together():
        opt.zero_grad()
        nn.functional.cross_entropy(members(x).flatten(0, 1), y.flatten(), reduction="none").view(k, -1).mean(1).sum().backward()
        opt.step()

    return separate, together, members.vectorized


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ks", type=int, nargs="+", default=[1, 8, 16])
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    lines = [
        "# One step of K members: stacked under vmap against K separate modules",
        "",
        f"`python benchmarks/members_step.py` on {platform.processor() or platform.machine()}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads; medians of {args.repeats} interleaved steps (Adam, cross-entropy).",
        "",
        "| family | K | K separate (ms) | members (ms) | speed-up | how |",
        "|---|---|---|---|---|---|",
    ]
    for family, shape, kind, batch in CASES:
        for k in args.ks:
            separate, together, vectorized = steps(family, shape, kind, batch, k)
            t_sep, t_tog = interleaved_medians([separate, together], args.repeats)
            how = "vmap" if vectorized else "one after another (no batching rule)"
            lines.append(f"| {family} | {k} | {t_sep * 1e3:.2f} | {t_tog * 1e3:.2f} | {t_sep / t_tog:.2f}× | {how} |")
            print(lines[-1], flush=True)
    write_markdown(ROOT / "benchmarks" / "results" / "members_step.md", lines + [""])


if __name__ == "__main__":
    main()
