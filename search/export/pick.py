"""Which run a search's export is made from: the search (by name or the latest finished), then the confirmed pick
(the most accurate architecture confirmed better than the plain backbone, else the plain backbone), or without a
confirmation the most accurate Pareto-front trial; with the confirmed figures written as a note."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import mlflow
from mlflow.entities import RunStatus

from search.confirm.statistics import Confirmed, Verdict, points, read_confirmed_csv
from search.outcomes import (ACCURACY, CONFIRMED_CSV, CONFIRM_TAG, DATA_JSON, LATENCY_MS, LATENCY_TABLE_TAG,
                             OUTCOME_TAG, PARETO_TAG, ROLE_TAG, SEARCH_ROLE, SEARCH_TAG, SEED_TAG, TEST_IMAGES_PARAM,
                             VAL_ACC, VERDICT_TAG, Score, test_split_text)
from search.settings.errors import UserError


def data_info(client: mlflow.MlflowClient, parent: Any) -> dict[str, Any] | None:
    """The search's data description (search.outcomes.DATA_JSON on the parent run), or None for older searches."""
    folder = DATA_JSON.rsplit("/", 1)[0]
    if not any(a.path == DATA_JSON for a in client.list_artifacts(parent.info.run_id, folder)):
        return None
    with tempfile.TemporaryDirectory() as tmp:
        return json.loads(Path(client.download_artifacts(parent.info.run_id, DATA_JSON, tmp)).read_text())


def confirmed_table(client: mlflow.MlflowClient, parent: Any) -> list[Confirmed] | None:
    """The search's confirmed table (``confirmation/confirmed.csv`` on the parent run), or None without one."""
    if not any(a.path.endswith(CONFIRMED_CSV) for a in client.list_artifacts(parent.info.run_id, "confirmation")):
        return None
    with tempfile.TemporaryDirectory() as tmp:
        return read_confirmed_csv(client.download_artifacts(parent.info.run_id, f"confirmation/{CONFIRMED_CSV}", tmp))


def pick_confirmed(client: mlflow.MlflowClient, experiment: str, *, parent: Any, rows: list[Confirmed],
                   max_latency_ms: float | None, score: Score = ACCURACY) -> tuple[Any, str]:
    """The most accurate confirmed architecture that beats the plain backbone beyond noise (within
    ``max_latency_ms``, as measured alone), else the plain backbone; the run is its first confirmation seed's.
    ``score``: the search's (its test metric and its points name the figures in the note)."""
    fits = [r for r in rows if max_latency_ms is None or (r.latency_ms is not None and r.latency_ms <= max_latency_ms)]
    if not fits:
        fastest = min((r.latency_ms for r in rows if r.latency_ms is not None), default=float("nan"))
        raise UserError(f"max_latency_ms={max_latency_ms}: no confirmed architecture is that fast; the fastest "
                        f"takes {fastest:.3f} ms")
    better = [r for r in fits if r.verdict == Verdict.BETTER]
    reference = next((r for r in fits if r.verdict == Verdict.REFERENCE), None)
    pick = max(better, key=lambda r: r.mean) if better else reference or max(fits, key=lambda r: r.mean or 0.0)
    runs = client.search_runs([experiment], max_results=1000, filter_string=(
        f"tags.mlflow.parentRunId = '{parent.info.run_id}' and tags.`{CONFIRM_TAG}` = '{pick.name}'"))
    runs = sorted((r for r in runs if r.data.tags.get(OUTCOME_TAG) == "completed"),
                  key=lambda r: int(r.data.tags.get(SEED_TAG, 0)))
    if not runs:
        raise UserError(f"search {parent.info.run_name!r}: no finished confirmation run of {pick.name!r}")
    why = ("it beats the plain backbone beyond seed noise" if pick.verdict == Verdict.BETTER else
           "no confirmed placement beats it beyond seed noise" if pick.verdict == Verdict.REFERENCE else
           "the plain backbone is over max_latency_ms; no confirmed placement within it beats the plain backbone")
    diff = ("" if pick.diff_mean is None or pick.verdict == Verdict.REFERENCE else
            f"; difference to the plain backbone {points(pick.diff_mean)} [{points(pick.diff_ci_low)}, "
            f"{points(pick.diff_ci_high)}] {score.points()} (95% over all candidates, paired by seed)"
            if pick.diff_ci_low is not None else
            f"; difference to the plain backbone {points(pick.diff_mean)} {score.points()}")
    std = f" ± {pick.std:.4f}" if pick.std is not None else ""
    latency = f", latency_ms {pick.latency_ms:.3f} (measured alone)" if pick.latency_ms is not None else ""
    if pick.latency_target_ms is not None:  # a search ranked by a latency table: the device it predicts for
        latency += (f", latency_target_ms {pick.latency_target_ms:.3f} (predicted for "
                    f"{parent.data.tags.get(LATENCY_TABLE_TAG, 'the latency table')})")
    note = (f"Confirmed ({pick.name}: {pick.arch_text}): {score.test} {pick.mean:.4f}{std} over {pick.n} seeds on "
            f"{test_split_text(test_images(parent))}{diff}{latency}.\nVerdict: {pick.verdict}; picked because {why}. "
            f"The search's verdict: {parent.data.tags.get(VERDICT_TAG, 'none recorded')}\n"
            f"Weights: the seed-{runs[0].data.tags.get(SEED_TAG)} confirmation run.\n")
    return runs[0], note


def find_search(client: mlflow.MlflowClient, experiment: str, *, search: str) -> Any:
    query = f"tags.`{ROLE_TAG}` = '{SEARCH_ROLE}'"
    if search != "latest":
        query += f" and tags.`attnas.search` = '{search}'"
    runs = client.search_runs([experiment], filter_string=query, order_by=["attributes.start_time DESC"],
                              max_results=200)
    finished = [r for r in runs if r.info.status == RunStatus.to_string(RunStatus.FINISHED)]
    if not finished:
        every = client.search_runs([experiment], filter_string=f"tags.`{ROLE_TAG}` = '{SEARCH_ROLE}'", max_results=200)
        done = RunStatus.to_string(RunStatus.FINISHED)
        names = sorted({r.data.tags.get(SEARCH_TAG, "") for r in every if r.info.status == done} - {""})
        unfinished = sorted({r.data.tags.get(SEARCH_TAG, "") for r in every if r.info.status != done} - {""})
        what = "no finished search" if search == "latest" else f"no finished search named {search!r}"
        raise UserError(f"{what} in the tracking store; finished searches: {', '.join(names) or 'none'}"
                        + (f" (not finished: {', '.join(unfinished)}; resume with python -m search.run name=NAME)"
                           if unfinished else ""))
    return finished[0]


def pick_front(client: mlflow.MlflowClient, experiment: str, *, parent: Any, max_latency_ms: Any,
               metric: str = VAL_ACC) -> Any:
    """The front trial of highest ``metric`` (the search's score: val_acc, val_miou) within ``max_latency_ms``."""
    front = client.search_runs(
        [experiment], filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}' and tags.{PARETO_TAG} = 'true'",
        max_results=1000)
    if not front:
        raise UserError(f"search {parent.info.run_name!r} has no Pareto front (no trial completed its full budget)")
    candidates = front
    if max_latency_ms is not None:
        candidates = [r for r in front if r.data.metrics[LATENCY_MS] <= float(max_latency_ms)]
        if not candidates:
            fastest = min(r.data.metrics[LATENCY_MS] for r in front)
            raise UserError(f"max_latency_ms={max_latency_ms}: no front trial is that fast; the fastest takes "
                            f"{fastest:.3f} ms")
    return max(candidates, key=lambda r: (r.data.metrics[metric], -r.data.metrics[LATENCY_MS]))




def test_images(parent: Any) -> int | None:
    """How many test images the search's confirmation scored (its parent run's param; None for older searches)."""
    value = parent.data.params.get(TEST_IMAGES_PARAM)
    return int(value) if value else None
