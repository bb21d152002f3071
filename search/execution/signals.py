"""Stopping a search from outside: Ctrl-C (SIGINT) and a batch scheduler's SIGTERM (Slurm's ``scancel``, a
Kubernetes pod deleted or preempted, ``timeout``) raise ``KeyboardInterrupt`` in the driver (:class:`Terminated` for
SIGTERM), so one path runs: the parent run is marked KILLED, Ray shuts down, and ``search.run`` exits with one line
and 130 or 143 (128 + the signal, what a shell reports); the same command resumes.

Two things make this more than Python's default:

- ``ray.init`` starts a core worker in the driver that puts its own SIGTERM handler in front of Python's (it prints
  a C++ stack dump, ``*** SIGTERM received ... PC: @ ...``, and the process dies without unwinding), so
  :func:`stop_on_signals` is called again once Ray is up (``search.execution.tuner.ray_runtime``).
- An exception raised by a signal handler while the main thread runs a finalizer or a callback from C is printed
  and dropped by Python, and the search would go on. The handler therefore also records the signal, and
  :func:`raise_if_stopped`, called at every step of Ray Tune's loop (``search.execution.progress``), raises it again.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType

EXIT_INTERRUPTED = 128 + signal.SIGINT  # 130
EXIT_TERMINATED = 128 + signal.SIGTERM  # 143
_received: list[int] = []  # the stop signals this process received, in order


class Terminated(KeyboardInterrupt):
    """The driver received SIGTERM."""


def _stop_error(signum: int) -> KeyboardInterrupt:
    return Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()


def _on_signal(signum: int, frame: FrameType | None) -> None:
    if signum == signal.SIGTERM and signal.SIGTERM in _received:
        return  # a scheduler repeating SIGTERM while the search stops: the first one counts
    _received.append(signum)
    raise _stop_error(signum)


def stop_on_signals() -> None:
    """Make SIGINT and SIGTERM raise in this (main) thread as the module docstring says; elsewhere (a thread)
    Python cannot set handlers, and nothing changes."""
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, _on_signal)


def raise_if_stopped() -> None:
    """Raise the first stop signal's exception again, when one was received (its first raise may have been dropped)."""
    if _received:
        raise _stop_error(_received[0])
