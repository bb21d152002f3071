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

from collections.abc import Sequence

import mlflow

from benchmarks._common import emit, header, parser, setup, table
from devices import prediction_error
from search.export.pick import confirmed_table
from search.outcomes import (LATENCY_OBJECTIVE, LATENCY_TABLE_ERROR_TAG, LATENCY_TABLE_TAG, LATENCY_TARGET, ROLE_TAG,
                             TRIAL_ROLE, VAL_ACC)
from search.pareto import first_front
from search.tracking.parent import find_parent_run, trial_runs


def main(argv: Sequence[str] | None = None) -> dict[str, float]:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--tracking-uri", default="sqlite:///mlflow.db", help="the search's MLflow store")
    p.add_argument("--experiment", default="attnas", help="the search's MLflow experiment (mlflow.experiment)")
    p.add_argument("--name", required=True, help="the search's name (its parent run)")
    args = p.parse_args(argv)
    device = setup(args)
    client = mlflow.MlflowClient(tracking_uri=args.tracking_uri)
    experiment = client.get_experiment_by_name(args.experiment)
    parent = experiment and find_parent_run(client, experiment=experiment.experiment_id, name=args.name)
    if not parent:
        raise SystemExit(f"no search named {args.name!r} in experiment {args.experiment!r} of {args.tracking_uri}")
    if "latency.table" not in parent.data.params:
        raise SystemExit(f"search {args.name!r} was not ranked by a latency table (no latency.table param)")
    runs = [r for r in trial_runs(client, experiment=parent.info.experiment_id, parent_run_id=parent.info.run_id
                                  ).values() if r.data.tags.get(ROLE_TAG) == TRIAL_ROLE]
    both = [r.data.metrics for r in runs if {LATENCY_OBJECTIVE, LATENCY_TARGET} <= set(r.data.metrics)]
    order = prediction_error([m[LATENCY_TARGET] for m in both], [m[LATENCY_OBJECTIVE] for m in both])
    full = [r for r in runs if r.data.tags.get("pareto") in ("true", "false") and VAL_ACC in r.data.metrics]
    drawn = {i for i, r in enumerate(full) if r.data.tags["pareto"] == "true"}
    here = set(first_front([(r.data.metrics[VAL_ACC], r.data.metrics[LATENCY_OBJECTIVE]) for r in full]))
    confirmed = [row for row in confirmed_table(client, parent) or [] if row.latency_target_measured_ms is not None]
    rows = [("trials with both latencies", len(both), f"Kendall tau {order.kendall_tau:.2f} between "
             f"{LATENCY_TARGET} and {LATENCY_OBJECTIVE}"),
            ("full-budget trials", len(full), f"front on {LATENCY_TARGET}: {len(drawn)}; on {LATENCY_OBJECTIVE}: "
             f"{len(here)}; shared: {len(drawn & here)}")]
    figures = {"trials": float(len(both)), "kendall_tau_target_vs_here": order.kendall_tau,
               "front_target": float(len(drawn)), "front_here": float(len(here)),
               "front_shared": float(len(drawn & here))}
    checks = [(r.name, r.arch_text.replace("|", "\\|"), f"{r.latency_target_ms:.3f}",
               f"{r.latency_target_measured_ms:.3f}", f"{r.latency_target_ms / r.latency_target_measured_ms - 1:+.1%}")
              for r in confirmed]
    if confirmed:
        error = prediction_error([r.latency_target_ms for r in confirmed],
                                 [r.latency_target_measured_ms for r in confirmed])
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
