"""Every benchmark, one after another (never two at once: they time the same cores), then one
markdown report of them all.

    python benchmarks/run_all.py                 # all of them (~30 min on 2 cores)
    python benchmarks/run_all.py overhead scaling

Each writes its own ``benchmarks/results/<name>.md``; this collects them, in order, under a header
naming the machine, into ``benchmarks/results/summary.md`` (each part names the machine and date of
its own run; a subset run leaves the others' results as they were).
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
BENCHMARKS = ("overhead", "data_path", "members", "families", "scaling")


def machine() -> str:
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return (
        f"{platform.machine()}, {os.cpu_count()} cores, {gpu}; Python {platform.python_version()}, torch {torch.__version__}, "
        f"{datetime.date.today().isoformat()}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", default=list(BENCHMARKS), help=f"a subset of: {', '.join(BENCHMARKS)}")
    args = parser.parse_args()
    unknown = [n for n in args.names if n not in BENCHMARKS]
    if unknown:
        print(f"error: unknown benchmark {', '.join(unknown)}; valid: {', '.join(BENCHMARKS)}", file=sys.stderr)
        return 2
    spent = {}
    for name in args.names:
        t0 = time.perf_counter()
        subprocess.run([sys.executable, str(ROOT / "benchmarks" / f"{name}.py")], check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
        spent[name] = time.perf_counter() - t0
        print(f"{name}: {spent[name]:.0f} s → benchmarks/results/{name}.md", flush=True)
    parts = [f"# Benchmarks\n\n`python benchmarks/run_all.py` on {machine()}.\n"]
    for name in BENCHMARKS:
        path = RESULTS / f"{name}.md"
        if path.exists():
            body = re.sub(r"^(#+) ", r"#\1 ", path.read_text(), flags=re.M)  # every heading one level down
            parts.append(body.strip() + "\n")
    (RESULTS / "summary.md").write_text("\n".join(parts))
    print(f"benchmarks/results/summary.md ({sum(spent.values()):.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
