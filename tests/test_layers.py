"""Imports point one way: core at the bottom (it imports nothing of the project), numerical tools,
networks and data above it (apart from each other), the LightningModules above networks and numerical
tools (``numerics/members.py`` stacks a seeds run's networks), callbacks above modules, experiments on
top. Every import in every file counts, lazy ones inside functions too."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PROJECT = ("core", "numerics", "lightning_modules", "datamodules", "callbacks", "experiments", "hydra_plugins", "benchmarks")
MAY_IMPORT = {
    "core": {"core"},
    "numerics": {"core", "numerics"},
    "datamodules": {"core", "datamodules"},
    "lightning_modules": {"core", "numerics", "lightning_modules"},
    "callbacks": {"core", "numerics", "lightning_modules", "datamodules", "callbacks"},
    "hydra_plugins": {"core", "hydra_plugins"},
    "experiments": set(PROJECT) - {"benchmarks"},
}


def imported(path: Path) -> set[tuple[str, int]]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {(a.name.split(".")[0], node.lineno) for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add((node.module.split(".")[0], node.lineno))
    return found


@pytest.mark.parametrize("package", sorted(MAY_IMPORT))
def test_imports_point_one_way(package):
    wrong = [
        f"{path.relative_to(ROOT)}:{line} imports {top}"
        for path in sorted((ROOT / package).rglob("*.py"))
        for top, line in imported(path)
        if top in PROJECT and top not in MAY_IMPORT[package]
    ]
    assert not wrong, "\n".join(wrong)


def test_the_core_imports_nothing_of_the_project():
    code = (
        "import sys, core.registry, core.signals, core.files; "
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {PROJECT!r} and not m.startswith('core')))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
