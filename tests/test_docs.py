"""The docs stand alone and stay true: every relative link in README.md and docs/ resolves (the
file, and the heading an anchor names), nothing refers outside the repository, and every
`python experiments/run.py ...` command in their code blocks composes (its groups, options and
keys exist; a sweep is checked at its first value; placeholders such as <run_dir> and bad input
shown with its error are skipped)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from conftest import compose_config

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    return re.sub(r"\s", "-", re.sub(r"[^\w\s-]", "", text))


def anchors(page: Path) -> set[str]:
    return {slug(line.lstrip("#")) for line in page.read_text().splitlines() if line.startswith("#")}


def outside_code(text: str) -> str:
    return re.sub(r"```.*?```", "", text, flags=re.S)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_relative_link_resolves(page):
    broken = []
    for target in LINK.findall(outside_code(page.read_text())):
        if re.match(r"[a-z]+:", target):
            continue  # http(s), mailto: not checked here
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        if ROOT.resolve() not in (resolved, *resolved.parents):
            broken.append(f"{target}: outside the repository")
        elif not resolved.exists():
            broken.append(f"{target}: no such file")
        elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
            broken.append(f"{target}: no heading #{anchor} in {resolved.name}")
    assert not broken, f"{page.name}: " + "; ".join(broken)


def commands() -> list[tuple[str, list[str]]]:
    found = []
    for page in PAGES:
        for block in re.findall(r"```[a-z]*\n(.*?)```", page.read_text(), flags=re.S):
            lines = block.replace("\\\n", " ").splitlines()
            for line, after in zip(lines, [*lines[1:], ""]):
                line = line.split(" #", 1)[0].strip().removeprefix("$ ")
                if "experiments/run.py" not in line or "<" in line or "..." in line or after.startswith("error:"):
                    continue  # not a command, a placeholder, or bad input shown with its error on purpose
                args = shlex.split(line.split("experiments/run.py", 1)[1])
                found.append((f"{page.name}: {line}", args))
    return found


def first_values(args: list[str]) -> list[str]:
    """The overrides of one job: sweeps at their first value, search ranges and Hydra's own keys dropped."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import ChoiceSweep, RangeSweep

    out = []
    for arg in args:
        if arg.startswith(("-", "hydra.", "hydra/", "+hydra.")) or "=" not in arg:
            continue
        override = OverridesParser.create().parse_overrides([arg])[0]
        if not override.is_sweep_override():
            out.append(arg)
            continue
        sweep = override.value()
        if isinstance(sweep, ChoiceSweep):
            out.append(f"{override.get_key_element()}={sweep.list[0]}")
        elif isinstance(sweep, RangeSweep):
            out.append(f"{override.get_key_element()}={sweep.start}")
    return out


def test_the_docs_commands_compose():
    from hydra.core.global_hydra import GlobalHydra

    failed = []
    for where, args in commands():
        GlobalHydra.instance().clear()
        try:
            compose_config(*first_values(args))
        except Exception as exc:  # noqa: BLE001 — every failure is listed, not only the first
            failed.append(f"{where}\n    {type(exc).__name__}: {' '.join(str(exc).split())[:200]}")
    assert len(commands()) >= 15 and not failed, "\n".join(failed)
