"""Pareto reports: CSV (every full-budget trial, front flagged), a PNG scatter and a self-contained HTML page.

The HTML page needs no server and no JavaScript library: an SVG scatter (hover a point for its trial, architecture
and metrics; click it to jump to its table row) above a table sortable by any column.
"""

from __future__ import annotations

import csv
import html
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from search.outcomes import LATENCY_OBJECTIVE as LATENCY  # the latency the front is ranked on (ms)

COLUMNS = ("trial_id", "control", "pareto", "val_acc", LATENCY, "latency_ms", "params_m", "flops_g", "arch", "run_id")


def write_pareto_report(rows: Sequence[Mapping[str, Any]], *, folder: str | Path, title: str) -> list[Path]:
    """Write ``pareto.csv``, ``pareto.png`` and ``pareto.html`` into ``folder``; returns their paths.

    ``rows`` are full-budget trials with at least ``trial_id``, ``val_acc`` (fraction), ``latency_norm_ms`` (what the front ranks), ``latency_ms``,
    ``pareto`` (bool) and ``arch`` (summary text); ``control`` names a control (plain, se_r16, ...), drawn apart.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    ordered = sorted(rows, key=lambda row: (not row["pareto"], row[LATENCY]))
    return [_write_csv(ordered, folder / "pareto.csv"), _write_png(ordered, folder / "pareto.png", title),
            _write_html(ordered, folder / "pareto.html", title)]


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


_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>{title}</title>
<style>
body{{font:14px system-ui,sans-serif;margin:24px;color:#1f2933}} table{{border-collapse:collapse}}
td,th{{padding:3px 10px;border-bottom:1px solid #e4e7eb;text-align:left}} th{{cursor:pointer;background:#f5f7fa}}
tr.front td{{font-weight:600}} tr:target{{background:#fff3bf}} circle{{cursor:pointer}} circle:hover{{r:7}}
</style></head><body>
<h2>{title}</h2>
<p>{n_front} Pareto-optimal of {n_rows} full-budget trials (val_acc up, latency_norm_ms down); controls in blue. Hover a point for details;
click it to find its row. Click a column header to sort.</p>
<svg width="{w}" height="{h}" role="img" aria-label="val_acc against latency_norm_ms">
<line x1="{pad}" y1="{bottom}" x2="{right}" y2="{bottom}" stroke="#52606d"/>
<line x1="{pad}" y1="{top}" x2="{pad}" y2="{bottom}" stroke="#52606d"/>
<text x="{mid_x}" y="{h_label}" text-anchor="middle">latency_norm_ms (batch 1): {x_min:.3g} .. {x_max:.3g}</text>
<text x="14" y="{mid_y}" transform="rotate(-90 14 {mid_y})" text-anchor="middle">val_acc: {y_min:.3f} .. {y_max:.3f}</text>
<polyline fill="none" stroke="#d9480f" points="{front_line}"/>
{points}
</svg>
<table id="trials"><thead><tr>{head}</tr></thead><tbody>
{body}
</tbody></table>
<script>
document.querySelectorAll('#trials th').forEach((th, col) => th.onclick = () => {{
  const body = document.querySelector('#trials tbody');
  const list = Array.from(body.rows);
  const dir = th.dataset.dir = th.dataset.dir === 'asc' ? 'desc' : 'asc';
  list.sort((a, b) => {{
    const x = a.cells[col].dataset.v, y = b.cells[col].dataset.v;
    const c = isNaN(x) || isNaN(y) ? x.localeCompare(y) : x - y;
    return dir === 'asc' ? c : -c; }});
  list.forEach(r => body.appendChild(r));
}});
</script></body></html>
"""


def _write_html(rows: Sequence[Mapping[str, Any]], path: Path, title: str) -> Path:
    w, h, pad = 720, 420, 50  # pixels
    xs = [row[LATENCY] for row in rows] or [0.0]
    ys = [row["val_acc"] for row in rows] or [0.0]
    x_min, x_max, y_min, y_max = min(xs), max(xs), min(ys), max(ys)

    def sx(v: float) -> float:
        return pad + (v - x_min) / ((x_max - x_min) or 1.0) * (w - 2 * pad)

    def sy(v: float) -> float:
        return h - pad - (v - y_min) / ((y_max - y_min) or 1.0) * (h - 2 * pad)

    points = []
    for row in rows:
        tip = (f"{row['trial_id']}  {row['arch']}\nval_acc={row['val_acc']:.4f}  {LATENCY}={row[LATENCY]:.3f}"
               f"  latency_ms={row.get('latency_ms', 0):.3f}  params_m={row.get('params_m', 0):.3f}  flops_g={row.get('flops_g', 0):.4f}")
        color = "#1c7ed6" if row.get("control") else "#d9480f" if row["pareto"] else "#9aa5b1"
        tip = f"control {row['control']}: {tip}" if row.get("control") else tip
        points.append(f'<a href="#{html.escape(row["trial_id"])}"><circle cx="{sx(row[LATENCY]):.1f}" '
                      f'cy="{sy(row["val_acc"]):.1f}" r="5" fill="{color}"><title>{html.escape(tip)}</title></circle></a>')
    front = sorted((row for row in rows if row["pareto"]), key=lambda row: row[LATENCY])
    front_line = " ".join(f"{sx(r[LATENCY]):.1f},{sy(r['val_acc']):.1f}" for r in front)
    head = "".join(f"<th>{c}</th>" for c in COLUMNS)
    body = "\n".join(
        f'<tr id="{html.escape(row["trial_id"])}" class="{"front" if row["pareto"] else ""}">'
        + "".join(f'<td data-v="{html.escape(str(row.get(c, "")))}">{html.escape(_cell(row.get(c)))}</td>'
                  for c in COLUMNS) + "</tr>"
        for row in rows
    )
    path.write_text(_PAGE.format(
        title=html.escape(title), n_front=len(front), n_rows=len(rows), w=w, h=h, pad=pad, top=pad, bottom=h - pad,
        right=w - pad, mid_x=w // 2, h_label=h - 12, mid_y=h // 2, x_min=x_min, x_max=x_max, y_min=y_min,
        y_max=y_max, front_line=front_line, points="\n".join(points), head=head, body=body
    ))
    return path


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return "" if value is None else str(value)
