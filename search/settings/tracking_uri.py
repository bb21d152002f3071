"""The MLflow tracking store's address rules, in one place: the default, "is it a server", the SQLite file of a
URI, and the early reachability check. No MLflow import here (``search.settings.plan`` and ``search.export`` check a
URI before anything heavy loads)."""

from __future__ import annotations

import urllib.error
import urllib.request
from pathlib import Path

from search.settings.errors import UserError

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"  # a SQLite file in the current folder
SQLITE_PREFIX = "sqlite:///"


def is_server(uri: str) -> bool:
    """Whether ``uri`` is an MLflow tracking server (which is its own UI) rather than a store on disk."""
    return uri.startswith(("http://", "https://"))


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///FILE`` URI (``~`` expanded, not resolved), else None."""
    return Path(uri[len(SQLITE_PREFIX):]).expanduser() if uri.startswith(SQLITE_PREFIX) else None


def check_tracking_uri(uri: str) -> None:
    """Fail early, with one line, when the tracking store cannot be reached (before Ray starts)."""
    if is_server(uri):
        try:
            with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=5) as response:
                response.read()
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise UserError(
                f"MLflow tracking server {uri} is unreachable ({reason}); start one with "
                f"'mlflow server --host 127.0.0.1 --port 5000' or use mlflow.tracking_uri={DEFAULT_TRACKING_URI}"
            ) from None
    elif (path := sqlite_path(uri)) is not None:
        folder = path.resolve().parent
        if not folder.is_dir():
            raise UserError(f"mlflow.tracking_uri={uri}: folder {folder} does not exist")
    elif not uri.startswith(("file:", "databricks", "postgresql", "mysql")) and "://" in uri:
        raise UserError(f"mlflow.tracking_uri={uri}: unsupported scheme; use sqlite:///FILE, file:DIR or http://HOST:PORT")
