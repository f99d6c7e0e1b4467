"""SIGTERM and SIGINT (Ctrl-C) end a run the same way, whenever they arrive.

While Lightning fits or tests, its own handler turns SIGTERM into a flag that every rank agrees on
at the next step (``callbacks/preemption.py`` routes SIGINT and SIGUSR1 to it and saves
``last.ckpt``). Outside those calls — importing, building, between a study's members, writing
results — the handler installed here raises ``Stopped``, which run.py turns into one line and exit
status 4, keeping what was finished and removing a run directory that holds nothing yet.

Lightning chains the handler it finds into its own, so this one is still called while Lightning
owns the signal: it then only records the signal (``signal_name``), and a signal that arrived in
the instant before Lightning took over is handed on to it (``take_pending``).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from contextlib import contextmanager
from typing import Iterator, Optional

HANDLED = (signal.SIGTERM, signal.SIGINT)
_state: dict = {"lightning": False, "pending": None, "last": None, "started": False}
EXIT_STOPPED = 4


class Stopped(BaseException):
    """A signal stopped the process outside Lightning's loops (a BaseException, like
    KeyboardInterrupt, so that no ``except Exception`` on the way swallows it)."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _handler(signum: int, frame) -> None:
    if signum == signal.SIGINT and _state["last"] == signal.SIGINT:  # Ctrl-C twice: stop now, without saving
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        raise KeyboardInterrupt
    _state["last"] = signum
    if _state["lightning"]:
        _state["pending"] = signum
        return
    if not _state["started"]:  # still importing: nothing exists yet that could be kept or removed
        sys.stderr.write(f"error: stopped by {signal.Signals(signum).name} while starting; nothing was created\n")
        os._exit(EXIT_STOPPED)
    raise Stopped(signum)


def install() -> None:
    if threading.current_thread() is threading.main_thread():
        for sig in HANDLED:
            signal.signal(sig, _handler)


def started() -> None:
    """From here on a signal raises ``Stopped``, for the entry point to end with one line."""
    _state["started"] = True


def signal_name(default: str = "a signal") -> str:
    return signal.Signals(_state["last"]).name if _state["last"] is not None else default


def take_pending() -> Optional[int]:
    """The signal recorded since Lightning was handed control, if any (cleared)."""
    signum, _state["pending"] = _state["pending"], None
    return signum


@contextmanager
def lightning_owns() -> Iterator[None]:
    """Around ``trainer.fit``/``trainer.test``: signals are Lightning's to handle. A signal that
    Lightning never acted on (it came after the last step) stops the process when the call returns."""
    _state["lightning"], _state["pending"] = True, None
    try:
        yield
    finally:
        _state["lightning"] = False
    pending = take_pending()
    if pending is not None:
        raise Stopped(pending)
