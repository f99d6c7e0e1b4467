"""DDP on the CPU (gloo, 2 processes) through the command line: one run directory, rank 0 prints,
the same accuracy as one process; inside a Hydra multirun, one sweep folder and no hang."""

from __future__ import annotations

import json

from conftest import run_cli


def test_ddp_on_two_cpu_processes_matches_one_process_and_makes_one_run_dir(tmp_path):
    common = ("trainer.max_epochs=20", "callbacks.progress=none", "callbacks.figures=false", "logger=none")
    ddp = run_cli("trainer=ddp_cpu", *common, cwd=tmp_path, timeout=300)
    assert ddp.returncode == 0, ddp.stderr[-2000:]
    lines = ddp.stdout.strip().splitlines()
    assert sum(line.startswith("run_dir:") for line in lines) == 1 and lines[-1].startswith("run_dir:")
    runs = list((tmp_path / "outputs" / "runs").iterdir())
    assert len(runs) == 1
    ddp_acc = json.loads((runs[0] / "metrics.json").read_text())["test/acc"]
    single_dir = tmp_path / "single"
    single_dir.mkdir()
    assert run_cli(*common, cwd=single_dir).returncode == 0
    single_acc = json.loads(next((single_dir / "outputs" / "runs").iterdir()).joinpath("metrics.json").read_text())["test/acc"]
    assert abs(ddp_acc - single_acc) <= 0.01 and ddp_acc >= 0.96, (ddp_acc, single_acc)


def test_ddp_inside_a_multirun_finishes_every_job_in_one_sweep_folder(tmp_path):
    proc = run_cli(
        "-m",
        "trainer=ddp_cpu",
        "seed=1,2",
        "trainer.max_epochs=2",
        "callbacks.progress=none",
        "callbacks.figures=false",
        cwd=tmp_path,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    sweeps = list((tmp_path / "outputs" / "multiruns").iterdir())
    assert len(sweeps) == 1, sweeps  # the extra processes joined the first one's folder
    jobs = sorted(p.name for p in sweeps[0].iterdir() if p.is_dir())
    assert len(jobs) == 2 and all((sweeps[0] / j / "metrics.json").exists() for j in jobs)
