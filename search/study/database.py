"""The study's database: an Optuna RDB storage (SQLite by default; PostgreSQL or MySQL for a team) that waits out a
database restart instead of ending the search.

A team's study lives on a database server (docs/team.md). When that server restarts mid-search, every call in
flight fails with a connection error and the connections in the pool are dead. :func:`open_storage` therefore pings
a pooled connection before using it (SQLAlchemy's ``pool_pre_ping``) and wraps the storage in
:class:`PatientStorage`, which retries a call that failed for want of a connection, with back-off, for up to
:data:`PATIENCE_S`; past that the search stops with :class:`DatabaseDown` (one line; the same command resumes).
Errors that are not about the connection (a constraint, bad data) are raised at once, as Optuna raises them.

The URL's rules and the start-up check (a wrong password or an unreachable host: one line before anything is
written) are :mod:`search.settings.database_url`. No Ray here.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import optuna
import sqlalchemy.exc

from search.log import say
from search.settings.database_url import driver_url, engine_kwargs, first_line, is_connection_error, redact

PATIENCE_S = 300.0  # how long a search waits for its study database before it stops (resumable)
_BACKOFF_S = (1.0, 2.0, 4.0, 8.0, 15.0)  # waits between retries; the last repeats


class DatabaseDown(RuntimeError):
    """The study database stayed unreachable for :data:`PATIENCE_S`; the message is one line."""


class PatientStorage:
    """An Optuna storage whose calls wait out a lost database connection (module docstring).

    A proxy, not a subclass: every public method of the wrapped storage (Optuna's ``_CachedStorage`` over
    ``RDBStorage``) is called through :meth:`_patiently`. A write whose commit reached the database just before the
    connection broke is retried like any other; Optuna's writes are keyed by trial id, so that repeats a value, it
    does not add a trial, except ``create_new_trial`` itself (a new trial cut off mid-commit may leave one RUNNING
    trial that no Ray trial runs; the resumed search tells it FAIL, as it does a trial asked after Ray's last
    snapshot)."""

    def __init__(self, make: Callable[[], optuna.storages.BaseStorage], *, url: str,
                 patience_s: float = PATIENCE_S) -> None:
        self._url, self._patience_s = url, patience_s
        self._inner = self._patiently(make)

    def __getattr__(self, name: str) -> Any:
        if name == "_inner":  # not set yet (unpickling): no recursion
            raise AttributeError(name)
        value = getattr(self._inner, name)
        if name.startswith("_") or not callable(value):
            return value
        return lambda *args, **kwargs: self._patiently(lambda: value(*args, **kwargs))

    def _patiently(self, call: Callable[[], Any]) -> Any:
        start, attempt, announced = time.monotonic(), 0, False
        while True:
            try:
                value = call()
            except Exception as exc:
                if not is_connection_error(exc):
                    raise
                waited = time.monotonic() - start
                if waited >= self._patience_s:
                    raise DatabaseDown(f"the study database {redact(self._url)} was unreachable for {waited:.0f} s "
                                       f"({first_line(exc)})") from None
                if not announced:
                    say(f"The study database {redact(self._url)} is unreachable ({first_line(exc)}): "
                        f"waiting up to {self._patience_s:.0f} s for it")
                    announced = True
                time.sleep(_BACKOFF_S[min(attempt, len(_BACKOFF_S) - 1)])
                attempt += 1
                continue
            if announced:
                say(f"The study database is back after {time.monotonic() - start:.0f} s; the search goes on")
            return value


def open_storage(url: str | optuna.storages.BaseStorage) -> optuna.storages.BaseStorage:
    """The Optuna storage for ``url`` (an RDB URL), patient (:class:`PatientStorage`); a storage object (the
    benchmarks' in-memory one) as it is. Several searches may open the same new database at once: Optuna's table
    creation then races, and the loser's attempt is retried."""
    if not isinstance(url, str):
        return url

    def create() -> optuna.storages.BaseStorage:
        return optuna.storages.get_storage(optuna.storages.RDBStorage(driver_url(url), engine_kwargs=engine_kwargs(url)))

    def make() -> optuna.storages.BaseStorage:
        for _ in range(2):  # two searches creating the same tables: the loser sees them on a retry
            try:
                return create()
            except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError):
                time.sleep(0.5)
        return create()

    return PatientStorage(make, url=url)  # type: ignore[return-value]  # duck-typed: Optuna takes it as a storage
