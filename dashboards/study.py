"""Watch a search's Optuna study live with optuna-dashboard (https://github.com/optuna/optuna-dashboard).

The study lives in an RDB storage (``optuna.db`` beside ``mlflow.db``: ``search.plan_check.study_storage_url``), named like
the search, so the dashboard shows each trial as Optuna is told of it, while the search runs:

    python -m dashboards.study                             # sqlite:///optuna.db in this folder, http://127.0.0.1:8080
    python -m dashboards.study --storage sqlite:///path/to/optuna.db --port 8081

optuna-dashboard is an optional dependency: ``pip install -e ".[dashboard]"`` (the ``dev`` extra includes it).
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys

from dashboards.serve import serve_args
from search.study.optuna_dashboard import DEFAULT_PORT, DEFAULT_STORAGE, study_command, study_hint

__all__ = ["main", "study_command", "study_hint"]


def main(argv: list[str] | None = None) -> None:
    args = serve_args(argv, prog="python -m dashboards.study", description=__doc__.splitlines()[0],
                      store_flag="--storage", store_default=DEFAULT_STORAGE, store_help="Optuna RDB storage",
                      port=DEFAULT_PORT)
    command = study_command(storage=args.store, host=args.host, port=args.port)
    executable = shutil.which(command[0], path=os.pathsep.join([os.path.dirname(sys.executable),
                                                                 os.environ.get("PATH", "")]))
    if executable is None:
        print("error: optuna-dashboard is not installed; valid fix: pip install -e '.[dashboard]'", file=sys.stderr)
        raise SystemExit(2)
    print(f"Optuna dashboard at http://{args.host}:{args.port}  ({shlex.join(command)})", flush=True)
    os.execv(executable, [executable, *command[1:]])


if __name__ == "__main__":
    main()
