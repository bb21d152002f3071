"""The optuna-dashboard command on a search's study (printed by the search, run by ``python -m dashboards.study``)."""

from __future__ import annotations

import shlex

from search.settings.database_url import redact

DEFAULT_STORAGE = "sqlite:///optuna.db"
DEFAULT_PORT = 8080  # optuna-dashboard's own default


def study_command(*, storage: str = DEFAULT_STORAGE, host: str = "127.0.0.1", port: int = DEFAULT_PORT) -> list[str]:
    """The ``optuna-dashboard`` command line serving ``storage`` on ``host:port``."""
    return ["optuna-dashboard", storage, "--host", host, "--port", str(port)]


def study_hint(*, storage: str) -> str:
    """The line a person copies to watch the study (printed when a search starts and ends; a password in the URL
    shows as ***)."""
    return f"{shlex.join(study_command(storage=redact(storage)))}   then open http://127.0.0.1:{DEFAULT_PORT}"
