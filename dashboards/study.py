"""Watch a search's Optuna study live with optuna-dashboard (https://github.com/optuna/optuna-dashboard).

The study lives in an RDB storage (``optuna.db`` beside ``mlflow.db``: ``search.plan.study_storage_url``), named like
the search, so the dashboard shows each trial as Optuna is told of it, while the search runs:

    python -m dashboards.study                             # sqlite:///optuna.db in this folder, http://127.0.0.1:8080
    python -m dashboards.study --storage sqlite:///path/to/optuna.db --port 8081

optuna-dashboard is an optional dependency: ``pip install -e ".[dashboard]"`` (the ``dev`` extra includes it).
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import sys

DEFAULT_STORAGE = "sqlite:///optuna.db"
DEFAULT_PORT = 8080  # optuna-dashboard's own default


def study_command(*, storage: str = DEFAULT_STORAGE, host: str = "127.0.0.1", port: int = DEFAULT_PORT) -> list[str]:
    """The ``optuna-dashboard`` command line serving ``storage`` on ``host:port``."""
    return ["optuna-dashboard", storage, "--host", host, "--port", str(port)]


def study_hint(*, storage: str) -> str:
    """The line a person copies to watch the study (printed when a search starts and ends)."""
    return f"{shlex.join(study_command(storage=storage))}   then open http://127.0.0.1:{DEFAULT_PORT}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m dashboards.study", description=__doc__.splitlines()[0])
    parser.add_argument("--storage", default=DEFAULT_STORAGE, help="Optuna RDB storage (default: %(default)s)")
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default: %(default)s, local only)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="port (default: %(default)s)")
    args = parser.parse_args(argv)
    command = study_command(storage=args.storage, host=args.host, port=args.port)
    executable = shutil.which(command[0], path=os.pathsep.join([os.path.dirname(sys.executable),
                                                                 os.environ.get("PATH", "")]))
    if executable is None:
        print("error: optuna-dashboard is not installed; valid fix: pip install -e '.[dashboard]'", file=sys.stderr)
        raise SystemExit(2)
    print(f"Optuna dashboard at http://{args.host}:{args.port}  ({shlex.join(command)})", flush=True)
    os.execv(executable, [executable, *command[1:]])


if __name__ == "__main__":
    main()
