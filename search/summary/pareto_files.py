"""Pareto files for places that cannot show HTML: a CSV (every full-budget trial, front flagged) and a PNG scatter
(matplotlib). The interactive page is ``dashboards.report`` (plotly).
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

from search.outcomes import FLOPS_G, LATENCY_MS, LATENCY_OBJECTIVE, LATENCY_WORDS, PARAMS_M, VAL_ACC
from search.records import FinishedTrial

def columns(metric: str = VAL_ACC, latency: str = LATENCY_OBJECTIVE) -> tuple[str, ...]:
    """pareto.csv's columns, with the search's score ``metric`` (val_acc, val_miou) fourth and the latency it ranks
    (latency_norm_ms, latency_target_ms) fifth."""
    return ("trial_id", "control", "pareto", metric, latency, LATENCY_MS, PARAMS_M, FLOPS_G, "arch", "run_id")


COLUMNS = columns()


def write_pareto_report(rows: Sequence[FinishedTrial], *, folder: str | Path, title: str) -> list[Path]:
    """Write ``pareto.csv`` and ``pareto.png`` into ``folder`` from the full-budget trials ``rows``; returns their
    paths. The front is drawn on the latency it ranks (``latency_norm_ms``, ``latency_target_ms``) against the score
    (``val_acc``, ``val_miou``); controls drawn apart."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    ordered = sorted(rows, key=lambda row: (not row.pareto, row.ranked_ms))
    return [_write_csv(ordered, folder / "pareto.csv"), _write_png(ordered, folder / "pareto.png", title)]


def _write_csv(rows: Sequence[FinishedTrial], path: Path) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns(*((rows[0].metric, rows[0].latency) if rows else ())),
                                extrasaction="ignore")
        writer.writeheader()
        writer.writerows(row.cells() for row in rows)
    return path


def _write_png(rows: Sequence[FinishedTrial], path: Path, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    rest = [row for row in rows if not row.pareto]
    front = sorted((row for row in rows if row.pareto), key=lambda row: row.ranked_ms)
    ax.scatter([r.ranked_ms for r in rest], [r.score for r in rest], c="#9aa5b1", label="other trials")
    ax.step([r.ranked_ms for r in front], [r.score for r in front], where="post", c="#d9480f", lw=1)
    ax.scatter([r.ranked_ms for r in front], [r.score for r in front], c="#d9480f", label="Pareto front",
               zorder=3)
    controls = [row for row in rows if row.control]
    ax.scatter([r.ranked_ms for r in controls], [r.score for r in controls], marker="s", s=60,
               facecolors="none", edgecolors="#1c7ed6", linewidths=1.5, label="controls", zorder=4)
    for row in front:
        ax.annotate(str(row.arch), (row.ranked_ms, row.score), fontsize=6, xytext=(4, -8),
                    textcoords="offset points")
    for row in controls:
        ax.annotate(f"control {row.control}", (row.ranked_ms, row.score), fontsize=6, color="#1c7ed6",
                    xytext=(4, 4), textcoords="offset points")
    latency = rows[0].latency if rows else LATENCY_OBJECTIVE
    ax.set_xlabel(f"{latency} ({LATENCY_WORDS[latency]})")
    ax.set_ylabel(rows[0].metric if rows else VAL_ACC)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
