"""Launch the MLflow UI on a search's tracking store, bound to 127.0.0.1 unless told otherwise.

    python -m dashboards.ui                      # sqlite:///mlflow.db in this folder, http://127.0.0.1:5000
    python -m dashboards.ui --port 5001 --tracking-uri sqlite:///path/to/mlflow.db
"""

from __future__ import annotations

import os
import shlex
import sys

from dashboards.serve import serve_args
from search.tracking.links import DEFAULT_UI_PORT, experiment_url, run_url, ui_address, ui_command, ui_hint
from search.settings.tracking_uri import DEFAULT_TRACKING_URI

__all__ = ["experiment_url", "main", "run_url", "ui_address", "ui_command", "ui_hint"]


def main(argv: list[str] | None = None) -> None:
    args = serve_args(argv, prog="python -m dashboards.ui", description=__doc__.splitlines()[0],
                      store_flag="--tracking-uri", store_default=DEFAULT_TRACKING_URI, store_help="MLflow store",
                      port=DEFAULT_UI_PORT)
    command = ui_command(tracking_uri=args.store, host=args.host, port=args.port)
    print(f"MLflow UI at http://{args.host}:{args.port}  ({shlex.join(command)})", flush=True)
    os.execvp(sys.executable, [sys.executable, "-m", "mlflow", *command[1:]])


if __name__ == "__main__":
    main()
