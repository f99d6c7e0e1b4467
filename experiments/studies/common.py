"""What every study shares: its directory (new, or the latest one again with ``study.resume``),
member runs composed from the study's own overrides and skipped once finished, CSV tables."""

from __future__ import annotations

import csv
import fcntl
import json
import logging
import shutil
import time
from pathlib import Path
from typing import Any

from hydra import compose
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from core.errors import ConfigError
from core.files import write_csv_atomic as write_csv  # the studies' name for it
from core.files import write_json_atomic
from experiments import rundir

log = logging.getLogger("dl_foundations")
FINISHED = "study.json"  # written when a study completes; its presence marks a finished study dir


def holds_work(path: Path) -> bool:
    """A study directory with finished members or parts, or member jobs submitted (study.detach)."""
    return (path / "members").is_dir() or (path / "parts").is_dir() or (path / "logs" / "jobs.json").is_file()


def study_dir_for(cfg: DictConfig, fresh_dir: Path) -> Path:
    """``fresh_dir`` (Hydra's new run dir), or with ``study.resume=true`` the most recent earlier
    directory of the same study, or with ``study.resume=<study_dir>`` that one; finished members are kept."""
    resume = cfg.study.resume
    if resume is None or resume is False:
        return fresh_dir
    if resume is True:
        earlier = sorted(p for p in fresh_dir.parent.iterdir() if p.is_dir() and p != fresh_dir.resolve() and holds_work(p))
        if not earlier:
            raise ConfigError(
                f"study.resume=true: no earlier '{cfg.study.name}' study with finished work under {fresh_dir.parent} to resume"
            )
        target = earlier[-1]
    else:
        target = Path(str(resume)).expanduser().resolve()
        saved = target / ".hydra" / "config.yaml"
        if not (target.is_dir() and holds_work(target) and saved.is_file()):
            raise ConfigError(f"study.resume={resume}: not a study directory with finished or submitted work; give true or one")
        name = OmegaConf.load(saved).get("study", {}).get("name")
        if name != cfg.study.name:
            raise ConfigError(f"study.resume={resume}: is a study={name} directory, not study={cfg.study.name}")
    rundir.release(fresh_dir)  # holds only Hydra's record of this invocation
    log.info(f"resuming {target}")
    return target


def member_overrides(*extra: str) -> list[str]:
    """The overrides the study was started with (minus study and hydra keys), then ``extra``."""
    given = [o for o in HydraConfig.get().overrides.task if not o.lstrip("+~").startswith(("study", "hydra"))]
    return ["callbacks.summary_depth=0", *given, "study=none", "callbacks.progress=none", *extra]  # a given summary depth wins


def run_member(member_dir: Path, overrides: list[str], primary: bool = True) -> tuple[dict, bool]:
    """Train one member in ``member_dir`` unless it already finished there; (record, was_run). A
    member stopped mid-training (its process killed, its job pre-empted) continues from its last
    checkpoint. ``primary=False``: a further task of a multi-process member, which takes no lock."""
    done = member_dir / "metrics.json"
    if done.exists():
        return json.loads(done.read_text()), False
    member_dir.parent.mkdir(parents=True, exist_ok=True)
    if not primary:
        return _train_member(member_dir, overrides, primary), True
    # one process per member at a time, whichever launcher or study process started it: the kernel
    # drops the lock when the process ends, however it ends
    with open(member_dir.parent / f".{member_dir.name}.lock", "a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ConfigError(f"study member {member_dir}: another process is training it right now; wait for it to end") from None
        if done.exists():  # finished by that other process while this one waited to look
            return json.loads(done.read_text()), False
        return _train_member(member_dir, overrides, primary), True


MEMBER = ".member.json"  # the overrides a member was started with, beside its run
DIVERGED = "diverged.json"  # a member whose loss stopped being finite: why, in one line (a search counts it as the worst)


def _train_member(member_dir: Path, overrides: list[str], primary: bool) -> dict:
    """``_train_or_continue``; a member whose loss stopped being finite leaves ``diverged.json`` (why,
    in one line) whichever process trained it, so the study reads it and ``study.resume`` keeps it."""
    from experiments.train import Diverged

    if primary:
        (member_dir / DIVERGED).unlink(missing_ok=True)  # trained again (a study that does not keep divergences)
    try:
        return _train_or_continue(member_dir, overrides, primary)
    except Diverged as exc:
        if primary:
            write_json_atomic(member_dir / DIVERGED, {"error": str(exc)})
        raise


def _train_or_continue(member_dir: Path, overrides: list[str], primary: bool) -> dict:
    """Continue a member stopped mid-training from its last checkpoint when it was started with the
    same overrides; else (none, or the study's command changed) train it from the start."""
    from experiments.train import check_checkpoint, latest_checkpoint, resume, train

    started = json.loads((member_dir / MEMBER).read_text()) if (member_dir / MEMBER).is_file() else None
    last = latest_checkpoint(member_dir) if member_dir.is_dir() else None
    if last is not None and started == overrides:
        try:
            state = check_checkpoint(last, "resume")
        except ConfigError as exc:
            log.warning(f"{member_dir}: {exc}; training this member again from the start")
        else:
            if state.get("optimizer_states"):
                log.info(f"{member_dir}: continuing from {last.relative_to(member_dir)} (stopped mid-training)")
                return resume(member_dir, member_dir, report=False)
            # a member trained in a seeds fit: the fit's directory holds the training state, its own only its weights
            log.warning(f"{member_dir}: its {last.name} holds weights only (trained in a seeds fit); training it again from the start")
    elif last is not None:
        why = "has no record of how it was started" if started is None else "was started with other overrides than the study's now"
        log.warning(f"{member_dir}: {why}; training it again from the start")
    if primary and member_dir.exists():
        shutil.rmtree(member_dir)  # stopped before its first checkpoint, or started otherwise: start it again
    member_dir.mkdir(parents=True, exist_ok=True)
    if primary:
        write_json_atomic(member_dir / MEMBER, overrides)
    return train(compose(config_name="train", overrides=overrides), member_dir, report=False)


def read_csv(path: Path) -> list[dict[str, Any]]:
    with open(path, newline="") as f:
        return [{k: _number(v) for k, v in row.items()} for row in csv.DictReader(f)]


def _number(v: str) -> Any:
    try:
        return float(v)
    except ValueError:
        return v


class Clock:
    def __init__(self):
        self.t0 = time.perf_counter()

    def __call__(self) -> float:
        return round(time.perf_counter() - self.t0, 1)


def finish(study_dir: Path, clock: Clock, rows: list[dict], table: list[dict], draw, report) -> None:
    """The end every study shares: ``results.csv`` (one row per run), ``summary.csv``, the figures
    (``draw(writer)``, logged to the study's TensorBoard), ``report(wall_s)``, then the marker of a
    finished study, written last. ``wall_s`` adds the time of an earlier completed invocation of the
    same study (a resume that only redraws must not report its own second)."""
    from callbacks.plot_style import writer_for

    marker = study_dir / FINISHED
    earlier = json.loads(marker.read_text()).get("wall_s", 0.0) if marker.exists() else 0.0

    write_csv(study_dir / "results.csv", rows)
    write_csv(study_dir / "summary.csv", table)
    writer = writer_for(study_dir / "tensorboard")
    try:
        draw(writer)
    finally:
        if writer is not None:
            writer.close()
    wall_s = round(earlier + clock(), 1)
    report(wall_s)
    write_json_atomic(marker, {"wall_s": wall_s, "runs": len(rows)})


def kept(study_dir: Path, name: str, want: dict, compute) -> dict:
    """``cached`` for a unit made with the settings ``want`` (saved beside its result as ``settings``):
    computed, or read back when it was made with these settings; one made with others is refused."""
    found = cached(study_dir, name, lambda: {"settings": want, **compute()})
    if found.get("settings") != want:
        raise ConfigError(refused_part(name, found.get("settings"), want))
    return found


def check_kept(study_dir: Path, prefix: str, want: dict) -> None:
    """Before anything trains: every ``parts/<prefix>*.json`` was made with ``want``, so a resume with
    other settings is refused before it adds a part made with them beside the old ones."""
    for path in sorted((study_dir / "parts").glob(f"{prefix}*.json")):
        saved = json.loads(path.read_text()).get("settings")
        if saved != want:
            raise ConfigError(refused_part(path.stem, saved, want))


def refused_part(name: str, saved, want: dict) -> str:
    return (
        f"study.resume: parts/{name}.json was made with other settings ({saved}) than this command's ({want}); "
        "resume with the command the study was started with, or start a new study"
    )


def cached(study_dir: Path, name: str, compute):
    """``compute()``'s JSON-able result, kept in ``study_dir/parts/<name>.json``: a resumed study reads
    what an interrupted one finished instead of redoing it (for studies whose units are not member runs)."""
    path = study_dir / "parts" / f"{name}.json"
    if path.exists():
        return json.loads(path.read_text())
    result = compute()
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, result, indent=None, sort_keys=False)  # the columns keep compute()'s order on resume
    return result
