"""``study.launcher=local``: ``study.workers`` worker processes on this machine
(``python -m experiments.studies.member --serve``), each training one member at a time as the
study sends them; the cores are divided between them (torch threads per worker) and, with
``trainer=gpu``, each has one GPU. A member's output goes to ``<study>/logs/<member>_seed<k>.log``.
A worker whose member crashed it (a signal, a native fault) is replaced for the next member; the
workers end with the study process."""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
from pathlib import Path

from experiments.studies.launch import Slots, Unit, last_error

ROOT = str(Path(__file__).resolve().parents[2])  # the workers run this checkout's code, whatever is installed


class Member:
    """A member sent to a worker: it ends with the worker's answer, or with the worker's death."""

    def __init__(self, unit: Unit, proc: subprocess.Popen, log: Path, release):
        self.unit, self.proc, self.log, self.release = unit, proc, log, release

    def poll(self) -> str | None:
        if select.select([self.proc.stdout], [], [], 0)[0]:
            line = self.proc.stdout.readline()
            if line:
                self.release()
                code = json.loads(line)["code"]
                return "" if code == 0 else last_error(self.log) or f"exit status {code}"
        code = self.proc.poll()
        if code is None:
            return None
        self.release()
        return f"killed by signal {-code}" if code < 0 else last_error(self.log) or f"its worker ended with status {code}"

    def stop(self) -> None:
        self.proc.terminate()

    def wait_stopped(self) -> None:
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class Workers:
    poll_s = 0.2

    def __init__(self, workers: int, on_gpu: bool, logs: Path):
        self.capacity, self.on_gpu, self.logs = workers, on_gpu, logs
        self.slots = Slots(workers)
        self.procs: dict[int, subprocess.Popen] = {}  # slot → its worker

    def adopt(self, units: list[Unit]) -> list[Member]:
        return []  # a worker never outlives its study process

    def start(self, units: list[Unit]) -> list[Member]:
        return [self._send(unit) for unit in units]

    def _worker(self, slot: int) -> subprocess.Popen:
        proc = self.procs.get(slot)
        if proc is not None and proc.poll() is None:
            return proc
        threads = str(self.slots.threads)
        env = {**os.environ, "OMP_NUM_THREADS": threads, "DLF_MEMBER_THREADS": threads, "DLF_LAUNCHER": "local"}
        env["DLF_STUDY_PID"] = str(os.getpid())  # the worker ends with this process (member.serve)
        env["PYTHONPATH"] = os.pathsep.join([ROOT, *filter(None, [os.environ.get("PYTHONPATH")])])
        if self.on_gpu:
            env["CUDA_VISIBLE_DEVICES"] = self.slots.gpu(slot)
        with open(self.logs / f"worker{slot}.log", "a") as said:  # what it says before or between members; theirs go to their logs
            self.procs[slot] = subprocess.Popen(
                [sys.executable, "-m", "experiments.studies.member", "--serve"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=said,
                env=env,
                cwd=os.getcwd(),
                text=True,
            )
        return self.procs[slot]

    def _send(self, unit: Unit) -> Member:
        slot = self.slots.take()
        path = self.logs / f"{unit.log_name}.log"
        task = json.dumps({"member_dir": str(unit.member_dir), "overrides": list(unit.overrides), "log": str(path)}) + "\n"
        for attempt in (1, 2):
            proc = self._worker(slot)
            try:
                proc.stdin.write(task)
                proc.stdin.flush()
                break
            except BrokenPipeError:  # the worker died since its last member: the next one is fresh
                proc.wait()
                if attempt == 2:
                    raise
        return Member(unit, proc, path, lambda: self.slots.give(slot))

    def close(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.stdin.close()  # no more members: the worker ends
        for proc in self.procs.values():
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
