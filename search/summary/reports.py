"""The reports on the parent run, written after the search and its confirmation: ``pareto/pareto.csv`` and
``pareto/pareto.png`` (:mod:`search.summary.pareto_files`), and every page a report writer draws from the
:class:`~search.summary.report_data.ReportData` (the interactive ``report.html`` of ``dashboards.report``).

Report writers are found through the ``attnas.reports`` entry points (``pyproject.toml``; name = a callable
``write(data, *, folder) -> Path``), so the search never imports the packages that draw its results: ``dashboards``
sits above ``search`` and reads it through ``search.summary.report_data``. Installing attnas registers
``dashboards.report:write_report``; another package can add its own page the same way.
"""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Callable, Sequence
from importlib.metadata import entry_points
from pathlib import Path

from search.log import tell
from search.outcomes import LATENCY_OBJECTIVE
from search.records import FinishedTrial
from search.settings.plan import SearchPlan
from search.study.searcher import open_study
from search.summary.collect import collect_report_data, insight_lines
from search.summary.front import SearchSummary
from search.summary.pareto_files import write_pareto_report
from search.summary.report_data import ReportData
from search.tracking.links import experiment_url, run_url
from search.tracking.parent import SearchRun

REPORT_WRITERS = "attnas.reports"  # the entry-point group of report writers
ReportWriter = Callable[..., Path]  # write(data: ReportData, *, folder) -> the page it wrote into folder


def report_writers() -> dict[str, ReportWriter]:
    """The installed report writers by entry-point name (``report``: ``dashboards.report.write_report``)."""
    return {point.name: point.load() for point in entry_points(group=REPORT_WRITERS)}


def write_reports(plan: SearchPlan, *, search: SearchRun, summary: SearchSummary) -> SearchSummary:
    """Write the Pareto files under ``pareto/`` and each report writer's page at the top of the parent run's
    artifacts; returns the summary with the placement insight in words and where ``report.html`` is."""
    tell("Writing the search report ...")
    title = f"{plan.name}: val_acc vs {LATENCY_OBJECTIVE} ({plan.budget.backbone}, {plan.space.dataset})"
    data = collect_report_data(
        study=open_study(storage=plan.study.storage, name=plan.name), client=search.client,
        experiment_id=search.experiment_id, parent_run_id=search.run_id, num_stages=plan.space.num_stages,
        types=[kind for stage in plan.space.stages for kind in stage.types], title=title,
        run_url=lambda run_id: run_url(tracking_uri=plan.mlflow.tracking_uri, experiment_id=search.experiment_id,
                                       run_id=run_id),
        experiment_url=experiment_url(tracking_uri=plan.mlflow.tracking_uri, experiment_id=search.experiment_id),
        confirmed=summary.confirmed, verdict=summary.verdict)
    pages = _write_pages(data, search=search, rows=summary.rows, title=title)
    where = ""
    if "report.html" in pages:
        where = search.client.get_run(search.run_id).info.artifact_uri.rstrip("/") + "/report.html"
        where = where[len("file://"):] if where.startswith("file://") else where
    return dataclasses.replace(summary, insight=insight_lines(data), report=where)


def _write_pages(data: ReportData, *, search: SearchRun, rows: Sequence[FinishedTrial], title: str) -> set[str]:
    """Upload the Pareto files and every writer's page; returns the pages' file names."""
    with tempfile.TemporaryDirectory() as folder:
        search.log_artifacts(write_pareto_report(rows, folder=folder, title=title), folder="pareto")
        pages = [write(data, folder=folder) for write in report_writers().values()]
        search.log_artifacts(pages, folder="")
    if not pages:
        tell(f"No report writer is installed (entry points {REPORT_WRITERS!r}): only pareto/ was written; "
             f"reinstall attnas (pip install -e .) for report.html")
    return {Path(page).name for page in pages}
