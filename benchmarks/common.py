"""What the benchmarks share: interleaved timing and writing their markdown table."""

from __future__ import annotations

import statistics
import time
from pathlib import Path


def interleaved_medians(fns, repeats: int) -> list[float]:
    """Median time of each function, timed in turn within every repeat, so that drift of the
    machine (other load, clock changes) hits all of them alike."""
    for fn in fns:
        fn()  # warm-up
    times = [[] for _ in fns]
    for _ in range(repeats):
        for fn, acc in zip(fns, times):
            t0 = time.perf_counter()
            fn()
            acc.append(time.perf_counter() - t0)
    return [statistics.median(t) for t in times]


def write_markdown(path: Path, lines: list[str]) -> None:
    """Write the benchmark's report to ``path`` (benchmarks/results/…) and echo it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))
    print("\n".join(lines))
