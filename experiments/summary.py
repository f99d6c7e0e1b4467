"""One table for many runs: every ``-m`` sweep ends with ``summary.csv`` and ``summary.md`` in its
folder (``hydra_callbacks.RunDirectories.on_multirun_end``), and ``python experiments/compare.py
DIR ...`` makes the same table for any runs, sweeps or studies.

``summary.csv`` has a row per run (job number, overrides, validation and test metrics, epochs,
wall_s, run dir, status: finished | pruned (a search's pruner stopped it) | failed | unfinished). ``summary.md`` groups the runs by
configuration — the overrides without ``seed`` — pooling seeds (mean ± half-width of the 95%
t-interval, n), sorted by the validation metric, which is what model selection reads; the test
metrics stand beside it as information.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Iterable

from core.files import write_text_atomic
from experiments.results import SELECTION_KEYS
from experiments.rundir import FAILED

MINIMIZED = ("mse", "mae", "loss")  # a selection metric with one of these in its name is better when lower


def is_run(path: Path) -> bool:
    return (path / "metrics.json").is_file() or (path / FAILED).is_file() or (path / ".hydra" / "config.yaml").is_file()


def find_runs(folders: Iterable[Path]) -> list[Path]:
    """The run directories at or below each folder (a run, a sweep, a study with members)."""
    found: list[Path] = []
    for folder in folders:
        folder = Path(folder)
        if is_run(folder):
            found.append(folder)
            continue
        found += sorted(
            p.parent.parent if p.parent.name == ".hydra" else p.parent
            for p in folder.rglob("*")
            if p.name in ("metrics.json", FAILED) or (p.name == "config.yaml" and p.parent.name == ".hydra")
        )
    runs = list(dict.fromkeys(p.resolve() for p in found))
    members = {m for run in runs for m in _members_of(run)}  # a seeds run's row stands for its members
    return [p for p in runs if p not in members]


def _members_of(run: Path) -> list[Path]:
    """The member directories of a finished ``seeds=[...]`` run (its metrics.json lists them)."""
    metrics = run / "metrics.json"
    if not metrics.is_file():
        return []
    return [(run / m["run"]).resolve() for m in json.loads(metrics.read_text()).get("members", []) if isinstance(m, dict) and "run" in m]


def _overrides(run: Path) -> list[str]:
    path = run / ".hydra" / "overrides.yaml"
    if not path.is_file():
        return []
    return [line[2:].strip() for line in path.read_text().splitlines() if line.startswith("- ")]


def _job_number(run: Path) -> int | None:
    match = re.match(r"(\d+)(?:_|$)", run.name)
    return int(match.group(1)) if match else None


def row(run: Path) -> dict[str, Any]:
    metrics = json.loads((run / "metrics.json").read_text()) if (run / "metrics.json").is_file() else {}
    failed = json.loads((run / FAILED).read_text()) if (run / FAILED).is_file() else None
    return _row(run, run, metrics, failed)


def _row(run: Path, where: Path, metrics: dict, failed: dict | None) -> dict[str, Any]:
    status = ("pruned" if metrics.get("pruned_at_epoch") is not None else "finished") if metrics else "failed" if failed else "unfinished"
    out: dict[str, Any] = {"job": _job_number(run), "overrides": " ".join(_overrides(run)), "status": status}
    out.update({k: v for k, v in sorted(metrics.items()) if k.startswith(("val/", "test/"))})
    out.update({"epochs": metrics.get("epochs"), "wall_s": metrics.get("wall_s"), "run_dir": str(where)})
    if failed:
        out["error"] = failed["error"]
    return out


def run_rows(run: Path) -> list[dict[str, Any]]:
    """A run's rows: one, or one per member of a ``seeds=[...]`` run (the table's interval is then over its members)."""
    metrics = json.loads((run / "metrics.json").read_text()) if (run / "metrics.json").is_file() else {}
    if "members" not in metrics:
        return [row(run)]
    pruned = {"pruned_at_epoch": metrics["pruned_at_epoch"]} if metrics.get("pruned_at_epoch") is not None else {}
    return [_row(run, run / m["run"], {**m, **pruned}, None) for m in metrics["members"]]


def rows(runs: Iterable[Path]) -> list[dict[str, Any]]:
    """A row per run (per member of a seeds run), in job order (then by directory)."""
    return sorted((r for run in runs for r in run_rows(run)), key=lambda r: (r["job"] is None, r["job"] or 0, r["run_dir"]))


def selection_key(rows: list[dict]) -> str | None:
    return next((k for k in SELECTION_KEYS if any(k in r for r in rows)), None)


def shared(rows: list[dict]) -> list[str]:
    """The overrides every run has (said once, above the table, instead of in every row)."""
    sets = [r["overrides"].split() for r in rows]
    return [o for o in sets[0] if all(o in s for s in sets[1:])] if sets else []


def configuration(overrides: str, common: list[str] = ()) -> str:
    kept = [o for o in overrides.split() if o not in common and not re.match(r"\+*(seed|seeds|members_dir)=", o)]
    return " ".join(kept) or "(defaults)"


def grouped(rows: list[dict]) -> tuple[list[dict], str | None]:
    """One row per configuration, seeds pooled: mean and 95% half-width of each metric, n; sorted
    by the validation metric (best first). Failed and unfinished runs are counted, not averaged."""
    from numerics.intervals import interval

    key, common = selection_key(rows), shared(rows)
    groups: dict[str, list[dict]] = {}
    for r in rows:
        groups.setdefault(configuration(r["overrides"], common), []).append(r)
    metrics = sorted({k for r in rows for k in r if k.startswith(("val/", "test/"))})
    table = []
    for name, members in groups.items():
        done = [r for r in members if r["status"] == "finished"]
        entry: dict[str, Any] = {"configuration": name, "n": len(done), "not finished": len(members) - len(done)}
        for metric in metrics:
            values = [r[metric] for r in done if r.get(metric) is not None]
            if values:
                mean, _, half = interval(values)
                entry[metric], entry[f"{metric} ±"] = mean, half
        table.append(entry)
    if key is not None:
        lower = any(m in key for m in MINIMIZED)
        table.sort(key=lambda e: (key not in e, e.get(key, 0.0) if lower else -e.get(key, 0.0)))
    return table, key


def _fmt(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else "" if value is None else str(value)


def markdown(table: list[dict], key: str | None, title: str, common: list[str]) -> str:
    metrics = [k for k in dict.fromkeys(k for e in table for k in e) if k.startswith(("val/", "test/")) and not k.endswith("±")]
    head = ["configuration", *metrics, "n", "not finished"]
    lines = [
        f"# {title}",
        "",
        f"Sorted by {key} (the validation metric that selection reads; test metrics are information only). "
        "Mean ± half-width of the 95% t-interval over seeds (n runs).",
        f"Every run also has: `{' '.join(common)}`." if common else "",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for e in table:
        cells = [e["configuration"]]
        for m in metrics:
            cells.append("" if m not in e else f"{e[m]:.4f}" if e["n"] == 1 else f"{e[m]:.4f} ± {e[m + ' ±']:.4f}")
        cells += [str(e["n"]), str(e["not finished"])]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write(rows: list[dict], out: Path, title: str) -> tuple[Path, Path]:
    """``summary.csv`` and ``summary.md`` in ``out`` (each written whole, then renamed)."""
    from experiments.studies.common import write_csv

    out.mkdir(parents=True, exist_ok=True)
    csv_path, md_path = out / "summary.csv", out / "summary.md"
    write_csv(csv_path, rows)
    table, key = grouped(rows)
    write_text_atomic(md_path, markdown(table, key, title, shared(rows)))
    return csv_path, md_path
