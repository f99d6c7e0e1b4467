"""A study's member runs in processes of their own.

``python -m experiments.studies.member <member_dir> <override> ...`` trains one member (a submitit
job calls ``main`` the same way); ``python -m experiments.studies.member --serve`` is a worker of
``study.launcher=local``: it trains the members it is sent on stdin (one JSON line each: its
directory, its overrides, its log) one after another, each with its output in its own log, and
answers a line per member on stdout, so the imports are paid once per worker, not once per member.
The overrides are the ones the study composed, so a member is the run it would have been inline.
Exit status (or answer) 0 when its ``metrics.json`` is written; a bad config or a failed run ends
with one line, ``error: ...``, in its log and a non-zero status."""

from __future__ import annotations

import json
import logging
import os
import sys
import traceback
from pathlib import Path


def main(argv: list[str], primary: bool = True) -> int:
    """``primary=False``: another task of a multi-process member (SLURM's ranks > 0), which trains in
    the first task's directory and takes no lock."""
    import torch
    from hydra import initialize_config_dir

    from core.errors import ConfigError
    from experiments.studies.common import run_member
    from experiments.train import Interrupted, TrainingFailed

    if not logging.root.handlers:  # the study's own process has Hydra's; the member's lines go to its log the same way
        logging.basicConfig(level=logging.INFO, format="[%(asctime)s][%(name)s][%(levelname)s] - %(message)s")
    threads = os.environ.get("DLF_MEMBER_THREADS")
    if threads:
        torch.set_num_threads(int(threads))  # the study divided the machine's cores between its workers
    member_dir, overrides = Path(argv[0]), argv[1:]
    config_dir = Path(__file__).resolve().parents[1] / "configs"
    try:
        with initialize_config_dir(config_dir=str(config_dir), version_base="1.3"):
            run_member(member_dir, overrides, primary=primary)
    except (ConfigError, TrainingFailed) as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 2 if isinstance(exc, ConfigError) else 3
    except Interrupted:  # SIGTERM (the study stopped, or SLURM pre-empted the job): the state is saved
        print("error: stopped by a signal after its state was saved; study.resume=true continues it", file=sys.stderr, flush=True)
        return 4
    return 0


def _die_with_study() -> None:
    """The kernel sends this worker SIGTERM when the study process dies (even by SIGKILL), so no
    orphan goes on training a member a later resume would start again. Set here, not between fork
    and exec (the study may have threads then, e.g. its progress bar)."""
    import ctypes
    import signal

    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:  # not Linux: the per-member lock still keeps a resume from training beside it
        pass
    study = os.environ.get("DLF_STUDY_PID")
    if study and os.getppid() != int(study):  # the study ended before the line above
        sys.exit(0)


def serve() -> int:
    _die_with_study()
    answers = os.fdopen(os.dup(1), "w")  # the study reads the answers here; fds 1 and 2 go to each member's log
    own = os.dup(2)  # the worker's own log, for what it says between members
    for line in sys.stdin:
        task = json.loads(line)
        with open(task["log"], "w") as log:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(log.fileno(), 1)
            os.dup2(log.fileno(), 2)
            try:
                code = main([task["member_dir"], *task["overrides"]])
            except Exception:  # noqa: BLE001 — a bug in one member's run: its traceback in its log, the worker goes on
                traceback.print_exc()
                code = 1
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(own, 1)
            os.dup2(own, 2)
        print(json.dumps({"code": code}), file=answers, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(serve() if sys.argv[1:] == ["--serve"] else main(sys.argv[1:]))
