"""Where a person opens what the search tracked: the MLflow UI command and addresses of its experiment and runs (one
home: the search prints them, the report links them, ``python -m dashboards.ui`` starts the UI)."""

from __future__ import annotations

import shlex
import urllib.parse

from search.settings.tracking_uri import DEFAULT_TRACKING_URI, is_server

RUNS_VIEW_KEY = "attnas-runs"  # the saved runs view's id (search.tracking.parent): URL parameter viewStateShareKey
DEFAULT_UI_PORT = 5000
DEFAULT_UI = f"http://127.0.0.1:{DEFAULT_UI_PORT}"  # where ``python -m dashboards.ui`` serves a local store


def ui_command(*, tracking_uri: str = DEFAULT_TRACKING_URI, host: str = "127.0.0.1",
               port: int = DEFAULT_UI_PORT) -> list[str]:
    """The ``mlflow ui`` command line for ``tracking_uri``, serving on ``host:port``."""
    return ["mlflow", "ui", "--backend-store-uri", tracking_uri, "--host", host, "--port", str(port)]


def ui_hint(*, tracking_uri: str) -> str:
    """The line a person copies to open the UI (printed at the end of every search)."""
    if is_server(tracking_uri):
        return f"open {tracking_uri} in a browser (the tracking server is the UI)"
    return f"{shlex.join(ui_command(tracking_uri=tracking_uri))}   then open {DEFAULT_UI}"


def ui_address(*, tracking_uri: str) -> str:
    """The MLflow UI's address for ``tracking_uri``: the server itself, or the one ``python -m dashboards.ui`` starts."""
    return tracking_uri.rstrip("/") if is_server(tracking_uri) else DEFAULT_UI


def experiment_url(*, tracking_uri: str, experiment_id: str) -> str:
    """The experiment's training-runs view with the search's columns (the saved view ``RUNS_VIEW_KEY``)."""
    query = urllib.parse.urlencode({"workflowType": "machine_learning", "viewStateShareKey": RUNS_VIEW_KEY})
    return f"{ui_address(tracking_uri=tracking_uri)}/#/experiments/{experiment_id}/runs?{query}"


def run_url(*, tracking_uri: str, experiment_id: str, run_id: str) -> str:
    """One run's page in the MLflow UI."""
    return f"{ui_address(tracking_uri=tracking_uri)}/#/experiments/{experiment_id}/runs/{run_id}"
