"""Launch the MLflow UI on a search's tracking store, bound to 127.0.0.1 unless told otherwise.

    python -m dashboards.ui                      # sqlite:///mlflow.db in this folder, http://127.0.0.1:5000
    python -m dashboards.ui --port 5001 --tracking-uri sqlite:///path/to/mlflow.db
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import urllib.parse

from search.tracking import RUNS_VIEW_KEY

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
DEFAULT_UI = "http://127.0.0.1:5000"  # where ``python -m dashboards.ui`` serves a local store


def ui_command(*, tracking_uri: str = DEFAULT_TRACKING_URI, host: str = "127.0.0.1", port: int = 5000) -> list[str]:
    """The ``mlflow ui`` command line for ``tracking_uri``, serving on ``host:port``."""
    return ["mlflow", "ui", "--backend-store-uri", tracking_uri, "--host", host, "--port", str(port)]


def ui_hint(*, tracking_uri: str) -> str:
    """The line a person copies to open the UI (printed at the end of every search)."""
    if _is_server(tracking_uri):
        return f"open {tracking_uri} in a browser (the tracking server is the UI)"
    return f"{shlex.join(ui_command(tracking_uri=tracking_uri))}   then open {DEFAULT_UI}"


def ui_address(*, tracking_uri: str) -> str:
    """The MLflow UI's address for ``tracking_uri``: the server itself, or the one ``python -m dashboards.ui`` starts."""
    return tracking_uri.rstrip("/") if _is_server(tracking_uri) else DEFAULT_UI


def _is_server(tracking_uri: str) -> bool:
    """Whether ``tracking_uri`` is an MLflow tracking server (which is its own UI) rather than a store on disk."""
    return tracking_uri.startswith(("http://", "https://"))


def experiment_url(*, tracking_uri: str, experiment_id: str) -> str:
    """The experiment's training-runs view with the search's columns (``search.tracking.RUNS_VIEW``)."""
    query = urllib.parse.urlencode({"workflowType": "machine_learning", "viewStateShareKey": RUNS_VIEW_KEY})
    return f"{ui_address(tracking_uri=tracking_uri)}/#/experiments/{experiment_id}/runs?{query}"


def run_url(*, tracking_uri: str, experiment_id: str, run_id: str) -> str:
    """One run's page in the MLflow UI."""
    return f"{ui_address(tracking_uri=tracking_uri)}/#/experiments/{experiment_id}/runs/{run_id}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m dashboards.ui", description=__doc__.splitlines()[0])
    parser.add_argument("--tracking-uri", default=DEFAULT_TRACKING_URI, help="MLflow store (default: %(default)s)")
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default: %(default)s, local only)")
    parser.add_argument("--port", type=int, default=5000, help="port (default: %(default)s)")
    args = parser.parse_args(argv)
    command = ui_command(tracking_uri=args.tracking_uri, host=args.host, port=args.port)
    print(f"MLflow UI at http://{args.host}:{args.port}  ({shlex.join(command)})", flush=True)
    os.execvp(sys.executable, [sys.executable, "-m", "mlflow", *command[1:]])


if __name__ == "__main__":
    main()
