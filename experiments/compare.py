"""``python experiments/compare.py DIR [DIR ...] [--out FOLDER]``: one table for any runs, sweeps or
studies (mixed kinds allowed). Prints the configurations, seeds pooled, sorted by the validation
metric; with ``--out`` writes ``summary.csv`` (a row per run) and ``summary.md`` there.

A folder with no run in it is an error (one line, exit 2); nothing is written then.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # works from any checkout, installed or not


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="compare.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("dirs", nargs="+", type=Path, help="run, sweep or study directories")
    parser.add_argument("--out", type=Path, default=None, help="folder for summary.csv and summary.md")
    args = parser.parse_args(argv)

    from experiments import summary

    for folder in args.dirs:
        if not folder.is_dir():
            print(f"error: {folder}: not a directory", file=sys.stderr)
            return 2
        if not summary.find_runs([folder]):
            print(f"error: {folder}: holds no run (no metrics.json, failed.json or .hydra/config.yaml below it)", file=sys.stderr)
            return 2
    rows = summary.rows(summary.find_runs(args.dirs))
    table, key = summary.grouped(rows)
    print_table(table, key)
    if args.out is not None:
        csv_path, md_path = summary.write(rows, args.out, "Comparison of " + ", ".join(str(d) for d in args.dirs))
        print(f"wrote {csv_path} and {md_path}")
    return 0


def print_table(table: list[dict], key: str | None) -> None:
    from rich.console import Console
    from rich.table import Table

    metrics = [k for k in dict.fromkeys(k for e in table for k in e) if k.startswith(("val/", "test/")) and not k.endswith("±")]
    out = Table(title=f"sorted by {key} (validation); mean ± 95% interval over seeds")
    for name in ["configuration", *metrics, "n", "not finished"]:
        out.add_column(name, justify="left" if name == "configuration" else "right")
    for e in table:
        out.add_row(
            e["configuration"], *(f"{e[m]:.4f} ± {e[m + ' ±']:.4f}" if m in e else "" for m in metrics), str(e["n"]), str(e["not finished"])
        )
    Console(width=200).print(out)


if __name__ == "__main__":
    sys.exit(main())
