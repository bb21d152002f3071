"""The command line both launchers share (``python -m dashboards.ui``, ``python -m dashboards.study``): which store,
and the interface and port to serve it on (127.0.0.1 unless told otherwise)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence


def serve_args(argv: Sequence[str] | None, *, prog: str, description: str, store_flag: str, store_default: str,
               store_help: str, port: int) -> argparse.Namespace:
    """Parse ``--STORE_FLAG``, ``--host`` and ``--port`` (``args.store``, ``args.host``, ``args.port``)."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument(store_flag, dest="store", metavar=store_flag.lstrip("-").replace("-", "_").upper(),
                        default=store_default, help=f"{store_help} (default: %(default)s)")
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default: %(default)s, local only)")
    parser.add_argument("--port", type=int, default=port, help="port (default: %(default)s)")
    return parser.parse_args(argv)
