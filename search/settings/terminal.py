"""How the commands talk to the terminal: timestamped progress lines and plain-text tables (bad input's one line is
:mod:`search.settings.errors`). No Ray import."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any


def format_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[tuple[str, str, str]]) -> str:
    """Plain-text table; ``columns`` are (key, header, format spec)."""
    cells = [[header for _, header, _ in columns]]
    cells += [[format(row[key], spec) if row.get(key) is not None else "" for key, _, spec in columns] for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip() for line in cells]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


_T0 = time.monotonic()  # the search's clock: progress lines show seconds since the driver started


def say(text: str) -> None:
    """Print one progress line, ``[  12.0s] text``."""
    print(f"[{time.monotonic() - _T0:6.1f}s] {text}", flush=True)
