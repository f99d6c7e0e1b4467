"""Regenerate every figure the docs show: ``python experiments/gallery.py``.

Each figure is a PNG that ``experiments/run.py`` itself draws, taken from a short run of it (a run
or a shrunk study, launched here as a subprocess in a temporary folder that is removed afterwards)
and scaled down into ``docs/figures/<name>.png``. Prints how long each run took, and the total.

    python experiments/gallery.py                                # every figure → docs/figures/
    python experiments/gallery.py --list                         # the figures and their commands; nothing run
    python experiments/gallery.py --only optimizer_paths,vae_samples --out draft_figures
    python experiments/gallery.py trainer.max_epochs=2           # overrides added to every run (a quick look)

The docs show the command behind each figure (``Job.command``); ``tests/test_docs.py`` checks that
every image they show is one of ``FIGURES`` and that the page names its command.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from core.files import replaced_atomically

ROOT = Path(__file__).resolve().parents[1]
RUN = ROOT / "experiments" / "run.py"
OUT = ROOT / "docs" / "figures"
# Added to every run: they change what a run prints and stores, not the figures taken from it.
QUIET = ("callbacks.progress=none", "logger=none")
RESULT = re.compile(r"^(?:run_dir|study_dir): (.+)$", re.M)


@dataclass(frozen=True)
class Job:
    """One ``python experiments/run.py ARGS`` and the figures taken from its run or study directory."""

    name: str
    args: tuple[str, ...]  # what the docs show
    figures: dict[str, tuple[str, int]]  # docs name → (PNG inside the run/study directory, width in pixels)
    speed: tuple[str, ...] = field(default=())  # added for speed only: the figures taken do not depend on them
    quiet: tuple[str, ...] = QUIET  # () for a study that refuses the groups it does not read (logger=, callbacks.*)

    def command(self) -> str:
        return " ".join(("python experiments/run.py", *self.args))


NO_MEMBER_FIGURES = ("callbacks.figures=false",)  # a study's members' own per-run figures are not used

JOBS = (
    Job(
        "default_run",
        (),
        {"run_learning_curves": ("figures/learning_curves.png", 1200), "run_confusion_matrix": ("figures/confusion_matrix.png", 700)},
    ),
    Job("moons", ("data=moons",), {"moons_decision_boundary": ("figures/decision_boundary.png", 700)}),
    Job(
        "optimizers",
        (
            "study=optimizers",
            "study.optimizers=[sgd,momentum,adagrad,adam]",
            "study.surfaces=[rosenbrock]",
            "study.task_optimizers=[]",
        ),
        {"optimizer_paths": ("figures/trajectories_rosenbrock.png", 1500)},
        NO_MEMBER_FIGURES,
    ),
    Job(
        "optimizers_tuned",
        ("study=optimizers",),
        {
            "optimizers_lr_tuning": ("figures/lr_tuning.png", 1100),
            "optimizers_vs_momentum": ("figures/test_accuracy_vs_momentum.png", 1000),
        },
        NO_MEMBER_FIGURES,
    ),
    Job(
        "flat_minima",
        ("study=flat_minima",),
        {"flat_minima_planes": ("figures/landscape_planes.png", 1100), "flat_minima_lines": ("figures/landscape_lines.png", 1000)},
    ),
    Job("double_descent", ("study=double_descent",), {"double_descent": ("figures/double_descent.png", 1400)}, quiet=()),
    Job(
        "gradient_flow",
        ("study=gradient_flow",),
        {
            "gradient_flow_accuracy": ("figures/depth_accuracy.png", 800),
            "gradient_flow_recurrence": ("figures/recurrence_gradients.png", 1200),
        },
        quiet=(),
    ),
    Job(
        "regularizers",
        (
            "study=regularizers",
            "study.only=[none,weight_decay,dropout,batch_norm,label_smoothing,augment,mixup,all]",
            "study.seeds=[0,1,2]",  # each member is compared with none paired by seed: with two, t(0.975, 1) = 12.7 hides everything
            "study.epochs=15",
        ),
        {"regularizers_gap": ("figures/generalization_gap.png", 1000), "regularizers_vs_none": ("figures/test_accuracy_vs_none.png", 1000)},
        NO_MEMBER_FIGURES,
    ),
    Job(
        "loss_robustness",
        ("study=loss_robustness", "study.seeds=[0,1]", "study.outlier_fractions=[0.0,0.2]"),
        {"loss_robustness_fits": ("figures/fitted_functions.png", 1400)},
        NO_MEMBER_FIGURES,
    ),
    Job(
        "mnist1d_table",
        ("study=mnist1d_table", "study.only=[logistic,mlp,cnn,resnet]", "study.seeds=[0]", "study.epochs=10"),
        {"mnist1d_table": ("figures/test_accuracy.png", 1000)},
        NO_MEMBER_FIGURES,
    ),
    Job("vae", ("model=vae", "trainer.max_epochs=30"), {"vae_samples": ("figures/samples.png", 680)}),
)
FIGURES = {figure: job for job in JOBS for figure in job.figures}  # every figure the docs may show → its job


def shrink(source: Path, target: Path, width: int, limit_kb: int = 150) -> None:
    """``source`` (a 300-dpi PNG) scaled down to ``width`` pixels, written atomically; above
    ``limit_kb`` it is saved with a 256-colour palette instead (no dithering: flat colours and
    anti-aliased lines survive it, a colour bar's gradient shows steps, so full colour comes first)."""
    from PIL import Image

    with Image.open(source) as image:
        image = image.convert("RGB")
    if image.width > width:
        image = image.resize((width, round(image.height * width / image.width)), Image.Resampling.LANCZOS)
    with replaced_atomically(target, suffix=".png") as partial:
        image.save(partial, format="PNG", optimize=True)
        if partial.stat().st_size > limit_kb * 1024:
            image.quantize(256, dither=Image.Dither.NONE).save(partial, format="PNG", optimize=True)


def run_job(job: Job, folder: Path, overrides: list[str], threads: int) -> Path:
    """Run the job in ``folder``; its run or study directory. If it fails: the end of its stderr, a line
    naming the job and its command, exit 1."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    env.pop("DLF_SWEEP_DIR", None)
    args = [sys.executable, str(RUN), *job.args, *job.speed, *job.quiet, *overrides]
    proc = subprocess.run(args, cwd=folder, env=env, capture_output=True, text=True)
    found = RESULT.findall(proc.stdout)
    if proc.returncode != 0 or not found:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
        sys.exit(f"{tail}\nerror: gallery: {job.name} failed (exit {proc.returncode}): {' '.join(args[1:])}")
    return Path(found[-1].strip())


def figure_names(text: str) -> list[str]:
    names = [name for name in text.split(",") if name]
    unknown = [name for name in names if name not in FIGURES]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown figure {', '.join(unknown) or repr(text)}; valid: {', '.join(FIGURES)}")
    return names


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python experiments/gallery.py",
        description="Regenerate the docs' figures from short runs of experiments/run.py.",
    )
    parser.add_argument("overrides", nargs="*", help="key=value added to every run's command (say trainer.max_epochs=2 for a quick look)")
    parser.add_argument("--only", type=figure_names, metavar="FIGURE[,FIGURE...]", help="these figures only (runs only their jobs)")
    parser.add_argument("--out", type=Path, default=OUT, help=f"where the PNGs go (default: {OUT.relative_to(ROOT)})")
    parser.add_argument("--list", action="store_true", help="print every figure and the command behind it; run nothing")
    parser.add_argument("--keep", action="store_true", help="keep the runs' folder (it is printed) instead of removing it")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads per run (OMP_NUM_THREADS; default 1: the models are small, and on a busy 2-core machine two threads "
        "per run cost far more than they gain)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    opts = parse(argv)
    if opts.list:
        for job in JOBS:
            for figure, (source, width) in job.figures.items():
                print(f"{figure}.png  {width} px  {source} of: {job.command()}")
        return 0
    wanted = set(opts.only or FIGURES)
    jobs = [job for job in JOBS if wanted & set(job.figures)]
    opts.out.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="dlf-gallery-"))
    extra = f"; every run also gets {' '.join(opts.overrides)}" if opts.overrides else ""
    print(f"gallery: {len(wanted)} figure(s) from {len(jobs)} run(s) → {opts.out} (runs in {folder}{extra})", flush=True)
    start, rows = time.perf_counter(), []
    try:
        for i, job in enumerate(jobs, 1):
            print(f"[{i}/{len(jobs)}] {job.command()}", flush=True)
            t0 = time.perf_counter()
            result = run_job(job, folder, opts.overrides, opts.threads)
            made = []
            for figure, (source, width) in job.figures.items():
                if figure in wanted:
                    target = opts.out / f"{figure}.png"
                    shrink(result / source, target, width)
                    made.append(f"{target.name} ({target.stat().st_size / 1024:.0f} KB)")
            seconds = time.perf_counter() - t0
            rows += [(figure, seconds) for figure in job.figures if figure in wanted]
            print(f"      {seconds:.1f} s → {', '.join(made)}", flush=True)
    finally:
        if opts.keep:
            print(f"runs kept in {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)
    total = time.perf_counter() - start
    print("time per figure (the figures of one run share its time): " + ", ".join(f"{name} {seconds:.1f} s" for name, seconds in rows))
    print(f"total: {total:.1f} s for {len(wanted)} figure(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
