"""One member run of a study in a process of its own (``study.launcher=local``):
``python -m experiments.studies.member <member_dir> <override> ...``. The overrides are the ones the
study composed for it, so the member is the run it would have been inline. Exit 0 when its
``metrics.json`` is written; a bad config or a failed run ends with one line and a non-zero status."""

from __future__ import annotations

import os
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    import torch
    from hydra import initialize_config_dir

    from core.errors import ConfigError
    from experiments.studies.common import run_member
    from experiments.train import TrainingFailed

    threads = os.environ.get("DLF_MEMBER_THREADS")
    if threads:
        torch.set_num_threads(int(threads))  # the study divided the machine's cores between its workers
    member_dir, overrides = Path(argv[0]), argv[1:]
    config_dir = Path(__file__).resolve().parents[1] / "configs"
    try:
        with initialize_config_dir(config_dir=str(config_dir), version_base="1.3"):
            run_member(member_dir, overrides)
    except (ConfigError, TrainingFailed) as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 2 if isinstance(exc, ConfigError) else 3
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
