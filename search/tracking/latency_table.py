"""A search ranked by a latency table (``latency.table``): say what it ranks, and keep the table on the parent run.

The parent run gets the table file (``latency/latency_table.json``), what it was measured on
(``attnas.latency_table``) and the predictor's error on the table's held-out architectures
(``attnas.latency_table_error``), so a reader of the run knows which device the ranked latency is for and how far to
trust it.
"""
from __future__ import annotations

import json
from pathlib import Path

from devices import LatencyPredictor, TableError, held_out_error
from search.log import tell
from search.outcomes import LATENCY_TABLE_ERROR_TAG, LATENCY_TABLE_JSON, LATENCY_TABLE_TAG, LATENCY_TARGET
from search.tracking.parent import SearchRun


def record_latency_table(search: SearchRun, predictor: LatencyPredictor) -> str:
    """Tell what the search ranks and record the table on ``search``'s parent run; returns the line told."""
    table = predictor.table
    try:
        error = f"predictor error on its {held_out_error(predictor)}"
    except TableError:
        error = "no held-out architectures in the table, so the predictor's error is not known"
    line = (f"The search ranks {LATENCY_TARGET}: latency predicted for {table.describe()}; {error}. Latency measured "
            f"here is logged beside it (latency_ms).")
    tell(line)
    search.client.set_tag(search.run_id, LATENCY_TABLE_TAG, table.describe())
    search.client.set_tag(search.run_id, LATENCY_TABLE_ERROR_TAG, error)
    search.log_dict(json.loads(Path(table.path).read_text(encoding="utf-8")), path=LATENCY_TABLE_JSON)
    return line
