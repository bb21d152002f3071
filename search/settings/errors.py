"""Bad input ends a command with one line on stderr and exit code 2; nothing is written before it is checked."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

from search.log import error

EXIT_BAD_INPUT = 2


def exception_chain(exc: BaseException | None) -> Iterator[BaseException]:
    """``exc``, then what it was raised from or during (``__cause__``, else ``__context__``), to the first one."""
    while exc is not None:
        yield exc
        exc = exc.__cause__ or exc.__context__


class UserError(ValueError):
    """Bad input from the user (config, space, data, tracking URI); the message is one line."""


@contextmanager
def exit_on_bad_input(*errors: type[BaseException]) -> Iterator[None]:
    """Turn :class:`UserError` and the given error types into ``error: <message>`` on stderr and exit code 2."""
    try:
        yield
    except (UserError, *errors) as exc:
        message = " ".join(str(exc).split()) or type(exc).__name__
        error(f"error: {message}")
        sys.exit(EXIT_BAD_INPUT)

