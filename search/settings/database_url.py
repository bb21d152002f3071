"""The rules of a database URL (the Optuna study's ``study.storage``): its password kept out of messages, a bounded
connection attempt, what counts as "could not connect", and the start-up check (:func:`check_storage`). SQLAlchemy
only, no Optuna or Ray (the settings check a URL before anything heavy loads); the patient storage that uses these
rules is :mod:`search.study.database`."""

from __future__ import annotations

import re
from typing import Any

import sqlalchemy
import sqlalchemy.exc

from search.settings.errors import exception_chain

CONNECT_TIMEOUT_S = 5  # a new connection's timeout: an unreachable host fails in seconds, not minutes


def redact(url: str) -> str:
    """``url`` with its password replaced by ``***`` (for messages)."""
    return re.sub(r"(://[^:/@]+:)[^@]*@", r"\1***@", url)


def driver_url(url: str) -> str:
    """``url`` with the PostgreSQL driver named: ``postgresql://`` means psycopg 3 (a dependency of attnas, and
    SQLAlchemy 2.1's default) whichever SQLAlchemy is installed; a URL that names its driver is kept."""
    return "postgresql+psycopg://" + url[len("postgresql://"):] if url.startswith("postgresql://") else url


def engine_kwargs(url: str) -> dict[str, Any]:
    """SQLAlchemy engine options: a pooled connection is pinged before use (a restarted server left it dead), and a
    new one gives up after :data:`CONNECT_TIMEOUT_S` (psycopg2 and the MySQL drivers call it ``connect_timeout``;
    SQLite has no host to wait for)."""
    server = url.startswith(("postgresql", "mysql"))
    return {"pool_pre_ping": True, "connect_args": {"connect_timeout": CONNECT_TIMEOUT_S} if server else {}}


def is_connection_error(exc: BaseException) -> bool:
    """Whether ``exc`` (or what it wraps: Optuna raises StorageInternalError from SQLAlchemy's error) says the
    database could not be reached, as opposed to a query it refused."""
    return any(isinstance(e, (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError))
               or isinstance(e, sqlalchemy.exc.DBAPIError) and e.connection_invalidated for e in exception_chain(exc))


def first_line(exc: BaseException) -> str:
    """The driver's own message (e.g. ``password authentication failed for user "x"``), one line."""
    while exc.__cause__ is not None:
        exc = exc.__cause__
    orig = getattr(exc, "orig", None) or exc
    lines = [line.strip() for line in str(orig).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


def check_storage(url: str) -> str | None:
    """One connection to the database of ``url`` (SQLite files are made on first use: not checked); returns the
    reason it failed in one line (wrong password, unreachable host, missing driver), or None when it connected."""
    if url.startswith("sqlite"):
        return None
    try:
        engine = sqlalchemy.create_engine(driver_url(url), **engine_kwargs(url))
    except (ImportError, sqlalchemy.exc.ArgumentError) as exc:
        return f"{type(exc).__name__}: {exc}"
    try:
        with engine.connect():
            return None
    except sqlalchemy.exc.SQLAlchemyError as exc:
        return first_line(exc)
    finally:
        engine.dispose()
