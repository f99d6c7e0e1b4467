"""Claiming a run (or study, or sweep) directory so that no two processes ever share one.

A directory is *claimed* by creating its ``.hydra/`` folder with ``os.mkdir`` (a sweep's: its
``multirun.yaml`` with ``O_EXCL``), which succeeds for exactly one process (atomic on POSIX
filesystems). A directory that already has one of them — or, from before claims existed,
``metrics.json`` or ``checkpoints/`` — holds a run, and nothing but that run's own resume writes
into it.

* A time-stamped default directory (``outputs/runs/<time>_<name>``) that another process claimed
  first, in the same second, becomes ``<time>_<name>_1`` (``_2``, ...): never shared, never refused.
* A directory the user named (``hydra.run.dir=...``, a cluster stamp) is used as named or refused
  with one line; it is never renamed, since other processes of the same job expect that name.

The process remembers what it claimed, so that a run refused before training removes its own
directory and nothing else (``release``). Pure Python: imports nothing of the project.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

CLAIM = ".hydra"  # a run's: created atomically by the claiming process; Hydra then saves its config into it
SWEEP_CLAIM = "multirun.yaml"  # a sweep's: created empty (O_EXCL), then Hydra writes the sweep's config over it
# claimed directory → (the highest folder the claim created, removed again on release; or None when
# the directory existed before — a folder the user named — and then only what the run put in it is
# removed: the names of MADE_BY_RUN that were not there already)
_claimed: dict[Path, tuple[Path | None, frozenset[str]]] = {}
_active: list[Path] = []  # the directories this process has trained in (held by ``locked``), newest last
FAILED = "failed.json"  # in a sweep job's directory: the job failed (its message and exit status)
MADE_BY_RUN = (CLAIM, SWEEP_CLAIM, "run.log", "tensorboard")  # what a run refused before training may have written


class ClaimError(ValueError):
    """The directory cannot be claimed; the message is one line naming the key and the path."""


def holds_run(path: Path) -> bool:
    path = Path(path)
    return any((path / name).exists() for name in (CLAIM, SWEEP_CLAIM, "metrics.json", "checkpoints"))


def _why(exc: OSError) -> str:
    return {
        errno.ENAMETOOLONG: "the name is too long for the filesystem",
        errno.ENOTDIR: "a part of the path is a file",
        errno.EEXIST: "a file of that name exists",
        errno.EACCES: "permission denied",
        errno.EROFS: "read-only filesystem",
        errno.ENOSPC: "no space left on the device",
    }.get(exc.errno, exc.strerror or str(exc))


def _try_claim(path: Path, marker: str) -> bool:
    """Claim ``path`` (creating it if needed); False when another run holds it."""
    if holds_run(path):
        return False
    created: Path | None = None if path.exists() else path
    while created is not None and not created.parent.exists() and created.parent != created:
        created = created.parent
    there = frozenset(name for name in MADE_BY_RUN if (path / name).exists())
    path.mkdir(parents=True, exist_ok=True)
    try:
        if marker == CLAIM:
            os.mkdir(path / marker)
        else:
            os.close(os.open(path / marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return False
    _claimed[path.resolve()] = (None if created is None else created.resolve(), there)
    return True


def claim(path: Path | str, key: str, unique: bool, marker: str = CLAIM) -> Path:
    """Claim ``path`` for this process and return the directory claimed: ``path`` itself, or with
    ``unique`` the first free ``<path>_<n>``. ``key`` names the setting in errors; ``marker`` is
    ``CLAIM`` for a run or study, ``SWEEP_CLAIM`` for a sweep."""
    path = Path(path)
    try:
        if _try_claim(path, marker):
            return path
        if not unique:
            what = (
                "a run or a sweep; choose a new directory"
                if marker == SWEEP_CLAIM
                else f"a run; choose a new directory (or resume={path} to continue it)"
            )
            raise ClaimError(f"{key}={path}: already holds {what}")
        for n in range(1, 1000):
            candidate = path.with_name(f"{path.name}_{n}")
            try:
                os.mkdir(candidate)  # exclusive: a second process starting in the same second takes the next number
            except FileExistsError:
                continue
            if _try_claim(candidate, marker):
                _claimed[candidate.resolve()] = (candidate.resolve(), frozenset())  # made above by os.mkdir
                return candidate
        raise ClaimError(f"{key}={path}: 999 runs of that name already started in the same second; choose a new directory")
    except OSError as exc:
        raise ClaimError(f"{key}={path}: cannot create the directory ({_why(exc)})") from exc


@contextmanager
def locked(path: Path, key: str) -> Iterator[None]:
    """Hold the directory's lock (``flock`` on the directory itself: nothing is written; the kernel
    drops it when the process ends, however it ends) while training in it: a second process (a
    ``resume=`` of a run that is still going) is refused with one line instead of writing beside it."""
    path = Path(path)
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ClaimError(f"{key}={path}: another process is training in this directory right now; wait for it to end") from None
        except OSError as exc:  # a filesystem without flock on directories (some NFS, Lustre without -o flock)
            logging.getLogger("dl_foundations").warning(
                f"{path}: cannot lock the directory ({_why(exc)}); a resume= of it while this run trains will not be refused"
            )
        _active.append(path.resolve())
        yield
    finally:
        os.close(fd)


def active() -> Path | None:
    """The directory this process trained in last (a resumed run's, too), if any."""
    return _active[-1] if _active else None


def claimed(path: Path) -> bool:
    return Path(path).resolve() in _claimed


def claimed_dirs() -> list[Path]:
    return sorted(_claimed)


def has_results(path: Path) -> bool:
    """Whether ``path`` holds anything a run or study finished: metrics, a checkpoint, a finished
    study member or part, a sweep job's record."""
    path = Path(path)
    return (
        (path / "metrics.json").exists()
        or (path / "study.json").exists()
        or any((path / "checkpoints").glob("*.ckpt"))
        or any(path.glob("*/checkpoints/*.ckpt"))
        or any(path.glob("members/*/checkpoints/*.ckpt"))
        or any(path.glob("members/*/metrics.json"))
        or any(path.glob("members/*/*/checkpoints/*.ckpt"))  # a study's members/<name>/seed<k>/
        or any(path.glob("members/*/*/metrics.json"))
        or any(path.glob("parts/*.json"))
        or (path / "logs" / "jobs.json").exists()  # a study's member jobs were submitted (study.detach)
        or any(path.glob("*/metrics.json"))
        or any(path.glob(f"*/{FAILED}"))
    )


def _detach_log_files(path: Path) -> None:
    """Close the log handlers writing into ``path`` (Hydra's run.log), which is about to go: later
    messages of this process must not re-create the file or fail on a missing folder."""
    for logger in [logging.getLogger(), *(lg for lg in logging.Logger.manager.loggerDict.values() if isinstance(lg, logging.Logger))]:
        for handler in list(logger.handlers):
            if isinstance(handler, logging.FileHandler) and Path(handler.baseFilename).is_relative_to(path):
                logger.removeHandler(handler)
                handler.close()


def discard_log_only(path: Path) -> None:
    """Remove ``path`` when it holds nothing but Hydra's run.log: the folder a DDP child process's
    Hydra re-creates for a ``resume=`` invocation whose first process already released it."""
    path = Path(path)
    if path.is_dir() and {p.name for p in path.iterdir()} <= {"run.log"}:
        _detach_log_files(path.resolve())
        shutil.rmtree(path, ignore_errors=True)


def release(path: Path) -> bool:
    """Remove ``path`` if this process claimed it and nothing finished is in it (a run refused or
    stopped before its first epoch): no directory is left looking like a run. True if removed."""
    path = Path(path).resolve()
    if claimed(path) and path.is_dir() and not has_results(path):
        _detach_log_files(path)
        top, there = _claimed.pop(path)
        if top is None:  # the user's own folder: take out only what this run put there
            for name in set(MADE_BY_RUN) - there:
                target = path / name
                shutil.rmtree(target, ignore_errors=True) if target.is_dir() else target.unlink(missing_ok=True)
            return True
        shutil.rmtree(path, ignore_errors=True)
        while path != top and path.parent.is_relative_to(top):  # the empty folders the claim created (outputs/runs/...)
            path = path.parent
            try:
                path.rmdir()
            except OSError:
                break
        return True
    return False
