"""experiments/gallery.py's plumbing, fast: its jobs compose, --list runs nothing, one cheap figure
end to end (a real run of experiments/run.py, cut to one epoch, into a folder of the test's own:
docs/figures/ and the repository are not touched, the runs' temporary folder is removed), a failing
run is named and leaves nothing, and the scaling keeps a figure small. The docs side (every image
shown is a gallery figure, with its command) is in tests/test_docs.py; the real figures come from
`python experiments/gallery.py`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import compose_config
from experiments import gallery

ROOT = Path(__file__).resolve().parents[1]
GALLERY = ROOT / "experiments" / "gallery.py"


def run_gallery(*args: str, tmp_path: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    temp = tmp_path / "temp"
    temp.mkdir(exist_ok=True)
    env = {**os.environ, "TMPDIR": str(temp)}  # where the gallery makes the runs' folder
    return subprocess.run([sys.executable, str(GALLERY), *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=timeout)


def test_figure_names_are_unique_and_every_job_has_one():
    names = [name for job in gallery.JOBS for name in job.figures]
    assert len(names) == len(set(names)) == len(gallery.FIGURES)
    assert len({job.name for job in gallery.JOBS}) == len(gallery.JOBS) and all(job.figures for job in gallery.JOBS)


@pytest.mark.parametrize("job", gallery.JOBS, ids=lambda job: job.name)
def test_every_job_composes(job):
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    cfg = compose_config(*job.args, *job.speed, *job.quiet)
    if job.quiet:
        assert cfg.callbacks.progress == "none"
    else:  # only a study that trains in its own process and refuses the groups it does not read goes without them
        from experiments.studies.launch import INLINE_ONLY

        assert cfg.study.name in INLINE_ONLY


def test_list_prints_every_figure_and_its_command_without_importing_torch():
    code = "import sys; from experiments import gallery; gallery.main(['--list']); print('torch' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60, check=True)
    lines = proc.stdout.strip().splitlines()
    assert lines[-1] == "False"
    for name, job in gallery.FIGURES.items():
        assert any(line.startswith(f"{name}.png ") and line.endswith(job.command()) for line in lines), name


def test_an_unknown_figure_is_refused_with_the_valid_names(tmp_path):
    proc = run_gallery("--only", "run_learning_curves,nope", tmp_path=tmp_path)
    assert proc.returncode == 2 and "unknown figure nope" in proc.stderr and "optimizer_paths" in proc.stderr


def test_one_figure_end_to_end_into_a_folder_of_its_own(tmp_path):
    before = {p.name: p.stat().st_mtime_ns for p in (ROOT / "docs" / "figures").iterdir()}
    out = tmp_path / "figures"
    proc = run_gallery("--only", "run_confusion_matrix", "--out", str(out), "trainer.max_epochs=1", tmp_path=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert sorted(p.name for p in out.iterdir()) == ["run_confusion_matrix.png"]
    from PIL import Image

    with Image.open(out / "run_confusion_matrix.png") as image:
        assert image.width == gallery.FIGURES["run_confusion_matrix"].figures["run_confusion_matrix"][1]
    assert (out / "run_confusion_matrix.png").stat().st_size < 200 * 1024
    assert "[1/1] python experiments/run.py" in proc.stdout and "time per figure" in proc.stdout and "total:" in proc.stdout
    assert list((tmp_path / "temp").glob("dlf-gallery-*")) == []  # the runs' folder is gone (torch may leave caches beside it)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["figures", "temp"]  # no outputs/ where it was started
    assert {p.name: p.stat().st_mtime_ns for p in (ROOT / "docs" / "figures").iterdir()} == before


def test_a_failing_run_is_named_and_leaves_nothing(tmp_path):
    out = tmp_path / "figures"
    proc = run_gallery("--only", "run_learning_curves", "--out", str(out), "optimizer.lr=-1", tmp_path=tmp_path)
    assert proc.returncode == 1
    assert "error: optimizer.lr=-1: must be a number > 0" in proc.stderr
    assert "error: gallery: default_run failed (exit 2)" in proc.stderr
    assert list(out.iterdir()) == [] and list((tmp_path / "temp").glob("dlf-gallery-*")) == []


def test_shrink_scales_down_and_falls_back_to_a_palette_when_large(tmp_path):
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    noisy = Image.fromarray(rng.integers(0, 256, (600, 1800, 3), dtype=np.uint8))  # incompressible: above any limit
    noisy.save(tmp_path / "big.png")
    gallery.shrink(tmp_path / "big.png", tmp_path / "small.png", width=900, limit_kb=50)
    with Image.open(tmp_path / "small.png") as image:
        assert image.size == (900, 300) and image.mode == "P"
    flat = Image.new("RGB", (400, 200), "white")
    flat.save(tmp_path / "flat.png")
    gallery.shrink(tmp_path / "flat.png", tmp_path / "flat_out.png", width=900)
    with Image.open(tmp_path / "flat_out.png") as image:
        assert image.size == (400, 200) and image.mode == "RGB"  # never scaled up; small enough for full colour
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.png", "flat.png", "flat_out.png", "small.png"]  # no partial file left
