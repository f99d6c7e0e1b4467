"""On a CUDA machine: seeds in one fit on the GPU, in bf16-mixed too. Without CUDA these skip, and
the GPU benchmark says it skipped and exits 0 (CI has no GPU)."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from conftest import ROOT

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


@pytest.mark.skipif(torch.cuda.is_available(), reason="the skip path, for machines without CUDA")
def test_the_gpu_benchmark_skips_cleanly_without_cuda():
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu.py")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "no CUDA device visible to torch; skipped, nothing written" in proc.stdout, proc.stderr[-2000:]


@CUDA
@pytest.mark.parametrize("precision", ["32-true", "bf16-mixed"])
def test_seeds_in_one_fit_on_the_gpu(train_run, precision):
    _, record = train_run("trainer=gpu", f"trainer.precision={precision}", "seeds=[0,1,2,3]", name=precision)
    assert record["test/acc"] > 0.9 and len(record["members"]) == 4
    assert len({m["test/acc"] for m in record["members"]}) > 1
