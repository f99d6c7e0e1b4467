"""The docs stand alone and stay true: every relative link in README.md and docs/ resolves (the
file, and the heading an anchor names), nothing refers outside the repository, every
`python experiments/run.py ...` command in their code blocks composes (its groups, options and
keys exist; a sweep is checked at its first value; placeholders such as <run_dir> and bad input
shown with its error are skipped), and every image they show is a figure that
`python experiments/gallery.py` draws, shown beside the command it comes from."""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path

import pytest

from conftest import compose_config

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
IMAGE = re.compile(r"!\[[^\]]*\]\(([^)\s]+)\)")
FIGURES = ROOT / "docs" / "figures"


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


def shown() -> dict[Path, list[Path]]:
    """Every image a page shows (markdown images and HTML <img>), resolved."""
    found = {}
    for page in PAGES:
        text = outside_code(page.read_text())
        targets = IMAGE.findall(text) + re.findall(r"<img[^>]*\ssrc=\"([^\"]+)\"", text)
        found[page] = [(page.parent / t).resolve() for t in targets if not re.match(r"[a-z]+:", t)]
    return found


def test_every_image_the_docs_show_exists_and_is_drawn_by_the_gallery():
    from experiments.gallery import FIGURES as DRAWN

    wrong = []
    for page, images in shown().items():
        for image in images:
            if not image.is_file():
                wrong.append(f"{page.name}: {os.path.relpath(image, ROOT)}: no such file")
            elif image.parent != FIGURES.resolve() or image.suffix != ".png" or image.stem not in DRAWN:
                wrong.append(f"{page.name}: {os.path.relpath(image, ROOT)}: not one of experiments/gallery.py's FIGURES")
    assert not wrong, "\n".join(wrong)


def test_docs_figures_holds_exactly_the_gallery_figures_and_each_is_shown():
    from experiments.gallery import FIGURES as DRAWN

    present = sorted(p.name for p in FIGURES.iterdir())
    assert present == sorted(f"{name}.png" for name in DRAWN), "run python experiments/gallery.py (or add the figure to its JOBS)"
    used = {image.stem for images in shown().values() for image in images}
    unshown = sorted(set(DRAWN) - used)
    assert not unshown, f"figures drawn but shown on no page: {unshown}"
    too_big = [f"{p.name}: {p.stat().st_size // 1024} KB" for p in FIGURES.iterdir() if p.stat().st_size > 200 * 1024]
    assert not too_big, too_big


def test_a_page_that_shows_a_figure_names_the_command_that_drew_it():
    from experiments.gallery import FIGURES as DRAWN

    missing = []
    for page, images in shown().items():
        text = " ".join(page.read_text().split())
        for image in images:
            job = DRAWN.get(image.stem)
            if job is not None and job.command() not in text:
                missing.append(f"{page.name}: {image.name} without `{job.command()}`")
    assert not missing, "\n".join(missing)


@pytest.mark.parametrize("page", PAGES[1:], ids=lambda p: p.name)
def test_every_docs_page_starts_with_a_link_back_to_the_readme(page):
    lines = [line for line in page.read_text().splitlines() if line.strip()]
    assert lines[0].startswith("# ") and lines[1] == "[← README](../README.md)", f"{page.name}: title, then [← README](../README.md)"
