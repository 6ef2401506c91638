"""Graceful stop of long jobs on SIGTERM/SIGINT (Ctrl-C, ``kill``, SLURM's pre-kill signal).

:func:`stop_on_signals` installs handlers that only record the first signal; the job polls the
returned :class:`StopRequest` at a safe point (training: the end of an epoch), writes its checkpoint
and raises :class:`Interrupted`, so a rerun resumes there.  A second signal interrupts at once
(``KeyboardInterrupt``).  The previous handlers are restored on exit.

>>> import os, signal
>>> with stop_on_signals() as stop:
...     os.kill(os.getpid(), signal.SIGTERM)
...     bool(stop), stop.name
(True, 'SIGTERM')
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections.abc import Iterable, Iterator
from types import FrameType

log = logging.getLogger(__name__)


class Interrupted(RuntimeError):
    """A job stopped on a signal after saving its state (the message says where)."""


class StopRequest:
    """True once a stop signal arrived; ``signum`` and ``name`` say which."""

    def __init__(self) -> None:
        self.signum: int | None = None

    def __bool__(self) -> bool:
        return self.signum is not None

    def __call__(self) -> bool:
        return bool(self)

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name if self.signum is not None else ""


@contextlib.contextmanager
def stop_on_signals(signums: Iterable[int] = (signal.SIGTERM, signal.SIGINT)) -> Iterator[StopRequest]:
    """Record SIGTERM/SIGINT in the yielded :class:`StopRequest` instead of dying at once.

    Outside the main thread (where handlers cannot be installed) nothing is installed and the
    request never becomes true.
    """
    stop = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        if stop.signum is not None:
            raise KeyboardInterrupt(f"second signal {signal.Signals(signum).name}: stopping at once")
        stop.signum = signum
        log.warning(
            "received %s: finishing the current step, saving a checkpoint, then stopping (a second signal stops at once)",
            signal.Signals(signum).name,
        )

    previous = {s: signal.signal(s, handler) for s in signums}
    try:
        yield stop
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
