"""Pareto files for places that cannot show HTML: a CSV (every full-budget trial, front flagged) and a PNG scatter
(matplotlib). The interactive page is ``dashboards.report`` (plotly).
"""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from search.outcomes import LATENCY_OBJECTIVE as LATENCY  # the latency the front is ranked on (ms)

COLUMNS = ("trial_id", "control", "pareto", "val_acc", LATENCY, "latency_ms", "params_m", "flops_g", "arch", "run_id")


def write_pareto_report(rows: Sequence[Mapping[str, Any]], *, folder: str | Path, title: str) -> list[Path]:
    """Write ``pareto.csv`` and ``pareto.png`` into ``folder``; returns their paths.

    ``rows`` are full-budget trials with at least ``trial_id``, ``val_acc`` (fraction), ``latency_norm_ms`` (what the front ranks), ``latency_ms``,
    ``pareto`` (bool) and ``arch`` (summary text); ``control`` names a control (plain, se_r16, ...), drawn apart.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    ordered = sorted(rows, key=lambda row: (not row["pareto"], row[LATENCY]))
    return [_write_csv(ordered, folder / "pareto.csv"), _write_png(ordered, folder / "pareto.png", title)]


def _write_csv(rows: Sequence[Mapping[str, Any]], path: Path) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path


def _write_png(rows: Sequence[Mapping[str, Any]], path: Path, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    rest = [row for row in rows if not row["pareto"]]
    front = sorted((row for row in rows if row["pareto"]), key=lambda row: row[LATENCY])
    ax.scatter([r[LATENCY] for r in rest], [r["val_acc"] for r in rest], c="#9aa5b1", label="other trials")
    ax.step([r[LATENCY] for r in front], [r["val_acc"] for r in front], where="post", c="#d9480f", lw=1)
    ax.scatter([r[LATENCY] for r in front], [r["val_acc"] for r in front], c="#d9480f", label="Pareto front",
               zorder=3)
    controls = [row for row in rows if row.get("control")]
    ax.scatter([r[LATENCY] for r in controls], [r["val_acc"] for r in controls], marker="s", s=60,
               facecolors="none", edgecolors="#1c7ed6", linewidths=1.5, label="controls", zorder=4)
    for row in front:
        ax.annotate(row["arch"], (row[LATENCY], row["val_acc"]), fontsize=6, xytext=(4, -8),
                    textcoords="offset points")
    for row in controls:
        ax.annotate(f"control {row['control']}", (row[LATENCY], row["val_acc"]), fontsize=6, color="#1c7ed6",
                    xytext=(4, 4), textcoords="offset points")
    ax.set_xlabel(f"{LATENCY} (batch 1, ms, relative to the plain backbone)")
    ax.set_ylabel("val_acc")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
