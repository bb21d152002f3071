"""What the search writes to the terminal goes through one logger, ``attnas`` (the standard :mod:`logging` module).

Every module of ``search`` writes its lines with :func:`say` (a progress line, ``[  12.0s] text``: seconds since the
command started), :func:`tell` (a plain line: headings, tables, the summary) or :func:`error` (a line on stderr: bad
input, an interrupted search); none of them prints. The command-line entry points (``search.settings.cli.main``,
which ``python -m search.run``, ``search.export`` and ``search.proxy`` go through) call :func:`configure` once: plain
messages, information to stdout and warnings and errors to stderr, as ``print`` wrote them. Used as a library (``run(cfg)``
from Python), the search leaves the ``attnas`` records to the application's own logging configuration.
No heavy imports (no Ray, no MLflow), so the settings can use it.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import TextIO

LOGGER = logging.getLogger("attnas")
_ELAPSED = "attnas_elapsed"  # a record attribute: True on progress lines (say), which carry the seconds elapsed


def say(text: str) -> None:
    """One progress line, ``[  12.0s] text`` once :func:`configure` has started the clock."""
    LOGGER.info(text, extra={_ELAPSED: True})


def tell(text: str) -> None:
    """One plain line (or several, joined by newlines) on stdout."""
    LOGGER.info(text)


def error(text: str) -> None:
    """One line on stderr (bad input, an interrupted search)."""
    LOGGER.error(text)


class _Plain(logging.Formatter):
    """The message alone; progress lines start with the seconds since ``start`` (``time.monotonic``)."""

    def __init__(self, *, start: float) -> None:
        super().__init__()
        self.start = start

    def format(self, record: logging.LogRecord) -> str:
        text = record.getMessage()
        return f"[{time.monotonic() - self.start:6.1f}s] {text}" if getattr(record, _ELAPSED, False) else text


class _Stream(logging.StreamHandler):
    """Writes to ``sys.stdout`` or ``sys.stderr`` as they are when a line is written (not when the handler was made),
    so output redirected later (pytest's capture, ``contextlib.redirect_stdout``) still gets the lines; flushed at
    every line, as the progress lines need under a pipe."""

    def __init__(self, which: str) -> None:
        self.which = which
        super().__init__()

    @property
    def stream(self) -> TextIO:  # type: ignore[override]
        return getattr(sys, self.which)

    @stream.setter
    def stream(self, _value: object) -> None:  # StreamHandler.__init__ sets it; the property decides
        pass


class _Below(logging.Filter):
    """Lets through records below ``level`` (stdout gets information; warnings and errors go to stderr)."""

    def __init__(self, level: int) -> None:
        super().__init__()
        self.level = level

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno < self.level


def configure() -> None:
    """Send the ``attnas`` records to the terminal as plain lines and start the progress clock; called once per
    command by its entry point (again: the handlers are replaced, not added to, and the clock restarts)."""
    formatter = _Plain(start=time.monotonic())
    out, err = _Stream("stdout"), _Stream("stderr")
    out.addFilter(_Below(logging.WARNING))
    err.setLevel(logging.WARNING)
    for handler in LOGGER.handlers[:]:
        if isinstance(handler, _Stream):
            LOGGER.removeHandler(handler)
    for handler in (out, err):
        handler.setFormatter(formatter)
        LOGGER.addHandler(handler)
    LOGGER.setLevel(logging.INFO)
    LOGGER.propagate = False  # the lines are the command's output, not log records for the root handlers too
