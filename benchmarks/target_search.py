"""A search ranked by a latency table: what the target's latency changed, and how the prediction held. Issue 38.

Reads a finished search run with ``latency.table=PATH`` (``python -m search.run ... latency.table=PATH name=NAME``)
from its MLflow store and prints:

- how the two latencies every trial logs rank the trials against each other: ``latency_norm_ms`` (measured here,
  what the search ranks without a table) and ``latency_target_ms`` (predicted for the table's device, what it
  ranked), as Kendall's tau over the trials that have both;
- the front the search drew (non-dominated on val_acc and latency_target_ms, constraint-aware: the study's) against
  the front the same full-budget trials make on val_acc and latency_norm_ms: how many architectures the two share;
- each confirmed architecture's predicted target latency against its measurement, where the table's device is this
  machine (``latency_target_measured_ms`` in confirmed.csv): the error of the prediction on architectures the search
  chose, which the table's held-out set (drawn uniformly) does not cover.
"""
from __future__ import annotations

import csv
import tempfile
from collections.abc import Sequence

import mlflow

from benchmarks._common import emit, header, parser, setup, table
from devices import prediction_error
from search.outcomes import (LATENCY_OBJECTIVE, LATENCY_TABLE_ERROR_TAG, LATENCY_TABLE_TAG, LATENCY_TARGET, ROLE_TAG,
                             SEARCH_ROLE, TRIAL_ROLE, VAL_ACC)
from search.pareto import nondominated_ranks


def _parent(client: mlflow.MlflowClient, *, name: str) -> mlflow.entities.Run:
    for experiment in client.search_experiments():
        runs = client.search_runs([experiment.experiment_id], max_results=1, filter_string=(
            f"attributes.run_name = '{name}' and tags.`{ROLE_TAG}` = '{SEARCH_ROLE}'"))
        if runs:
            return runs[0]
    raise SystemExit(f"no search named {name!r} in this MLflow store")


def _confirmed(client: mlflow.MlflowClient, run_id: str) -> list[dict[str, str]]:
    with tempfile.TemporaryDirectory() as folder:
        try:
            path = client.download_artifacts(run_id, "confirmation/confirmed.csv", folder)
        except (OSError, mlflow.exceptions.MlflowException):
            return []
        with open(path, newline="") as handle:
            return list(csv.DictReader(handle))


def _front(points: Sequence[tuple[float, float]]) -> set[int]:
    return {i for i, rank in enumerate(nondominated_ranks(points)) if rank == 0}


def main(argv: Sequence[str] | None = None) -> dict[str, float]:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--tracking-uri", default="sqlite:///mlflow.db", help="the search's MLflow store")
    p.add_argument("--name", required=True, help="the search's name (its parent run)")
    args = p.parse_args(argv)
    device = setup(args)
    client = mlflow.MlflowClient(tracking_uri=args.tracking_uri)
    parent = _parent(client, name=args.name)
    if "latency.table" not in parent.data.params:
        raise SystemExit(f"search {args.name!r} was not ranked by a latency table (no latency.table param)")
    runs = [r for r in client.search_runs([parent.info.experiment_id], max_results=5000, filter_string=(
        f"tags.mlflow.parentRunId = '{parent.info.run_id}' and tags.`{ROLE_TAG}` = '{TRIAL_ROLE}'"))]
    both = [r.data.metrics for r in runs if {LATENCY_OBJECTIVE, LATENCY_TARGET} <= set(r.data.metrics)]
    order = prediction_error([m[LATENCY_TARGET] for m in both], [m[LATENCY_OBJECTIVE] for m in both])
    full = [r for r in runs if r.data.tags.get("pareto") in ("true", "false") and VAL_ACC in r.data.metrics]
    drawn = {i for i, r in enumerate(full) if r.data.tags["pareto"] == "true"}
    here = _front([(r.data.metrics[VAL_ACC], r.data.metrics[LATENCY_OBJECTIVE]) for r in full])
    confirmed = [row for row in _confirmed(client, parent.info.run_id) if row.get("latency_target_measured_ms")]
    rows = [("trials with both latencies", len(both), f"Kendall tau {order.kendall_tau:.2f} between "
             f"{LATENCY_TARGET} and {LATENCY_OBJECTIVE}"),
            ("full-budget trials", len(full), f"front on {LATENCY_TARGET}: {len(drawn)}; on {LATENCY_OBJECTIVE}: "
             f"{len(here)}; shared: {len(drawn & here)}")]
    figures = {"trials": float(len(both)), "kendall_tau_target_vs_here": order.kendall_tau,
               "front_target": float(len(drawn)), "front_here": float(len(here)),
               "front_shared": float(len(drawn & here))}
    checks = [(r["name"], r["arch"].replace("|", "\\|"), f"{float(r['latency_target_ms']):.3f}",
               f"{float(r['latency_target_measured_ms']):.3f}",
               f"{float(r['latency_target_ms']) / float(r['latency_target_measured_ms']) - 1:+.1%}")
              for r in confirmed]
    if confirmed:
        error = prediction_error([float(r["latency_target_ms"]) for r in confirmed],
                                 [float(r["latency_target_measured_ms"]) for r in confirmed])
        figures.update(confirmed_mape=error.mape, confirmed_within_10=error.within_10)
    tags = parent.data.tags
    body = (f"Search `{args.name}` ranked by the latency table `{parent.data.params['latency.table']}`: "
            f"{tags.get(LATENCY_TABLE_TAG, '?')}; {tags.get(LATENCY_TABLE_ERROR_TAG, '?')}.\n\n"
            + table(["what", "n", "figure"], rows)
            + ("\n\nConfirmed architectures, predicted on the table vs timed here as the table was "
               "(the table's device is this machine):\n\n"
               + table(["confirmed", "architecture", "predicted ms", "measured ms", "error"], checks)
               if checks else "\n\nNo confirmed row has a measurement (the table's device is not this machine)."))
    print(body)
    emit("A search ranked by a latency table (benchmarks.target_search)",
         header(device, argv, "benchmarks.target_search"), body)
    return figures


if __name__ == "__main__":
    main()
