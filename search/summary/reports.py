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

import torch
from safetensors.torch import load_model

from backbones import build
from search.confirm.statistics import Verdict
from search.execution.checkpoint import WEIGHTS
from search.log import tell
from search.records import FinishedTrial
from search.settings.plan import SearchPlan
from search.study.searcher import open_study
from search.summary.collect import collect_report_data, insight_lines
from search.summary.front import SearchSummary
from search.summary.pareto_files import write_pareto_report
from search.summary.report_data import ReportData, SamplePanel
from search.tracking.links import experiment_url, run_url
from search.tracking.parent import SearchRun
from trials import TRIAL_TASKS
from trials.augment import normalize

REPORT_WRITERS = "attnas.reports"  # the entry-point group of report writers
ReportWriter = Callable[..., Path]  # write(data: ReportData, *, folder) -> the page it wrote into folder


def report_writers() -> dict[str, ReportWriter]:
    """The installed report writers by entry-point name (``report``: ``dashboards.report.write_report``)."""
    return {point.name: point.load() for point in entry_points(group=REPORT_WRITERS)}


def write_reports(plan: SearchPlan, *, search: SearchRun, summary: SearchSummary) -> SearchSummary:
    """Write the Pareto files under ``pareto/`` and each report writer's page at the top of the parent run's
    artifacts; returns the summary with the placement insight in words and where ``report.html`` is."""
    tell("Writing the search report ...")
    title = f"{plan.name}: {plan.score.val} vs {plan.score.latency} ({plan.budget.backbone}, {plan.space.dataset})"
    data = collect_report_data(
        study=open_study(storage=plan.study.storage, name=plan.name), client=search.client,
        experiment_id=search.experiment_id, parent_run_id=search.run_id, num_stages=plan.space.num_stages,
        types=[kind for stage in plan.space.stages for kind in stage.types], title=title,
        run_url=lambda run_id: run_url(tracking_uri=plan.mlflow.tracking_uri, experiment_id=search.experiment_id,
                                       run_id=run_id),
        experiment_url=experiment_url(tracking_uri=plan.mlflow.tracking_uri, experiment_id=search.experiment_id),
        confirmed=summary.confirmed, verdict=summary.verdict, score=plan.score,
        samples=sample_panel(plan, search=search, summary=summary) if TRIAL_TASKS[plan.space.task].mask_panel else None)
    pages = _write_pages(data, search=search, rows=summary.rows, title=title)
    where = ""
    if "report.html" in pages:
        where = search.client.get_run(search.run_id).info.artifact_uri.rstrip("/") + "/report.html"
        where = where[len("file://"):] if where.startswith("file://") else where
    return dataclasses.replace(summary, insight=insight_lines(data), report=where)


SAMPLE_SCENES = 4  # test scenes in the report's mask panel


def sample_panel(plan: SearchPlan, *, search: SearchRun, summary: SearchSummary,
                 count: int = SAMPLE_SCENES) -> SamplePanel | None:
    """The first ``count`` test scenes (validation scenes without a confirmation) with their true masks and the masks
    predicted by the confirmed pick's search trial (the confirmed ``better`` row of highest mean, when it is a front
    trial or a control the search trained), else by the front trial of highest score; its weights are the trial's
    checkpoint on its MLflow run. None when there is no such trial or its weights cannot be read."""
    by_name = {row.trial_id: row for row in summary.rows} | {row.control: row for row in summary.rows if row.control}
    better = sorted((r for r in summary.confirmed if r.verdict is Verdict.BETTER and r.mean is not None),
                    key=lambda r: -r.mean)
    row = next((by_name[r.name] for r in better if r.name in by_name), None)
    how = "the confirmed pick's search trial"
    if row is None and summary.front:
        row, how = max(summary.front, key=lambda r: r.score), "the front trial of highest score"
    if row is None or not row.run_id:
        return None
    data = plan.confirm.data if plan.confirm.data is not None else plan.data
    images, masks = ((data.test_x, data.test_y) if data.test_x is not None else (data.val_x, data.val_y))
    images, masks = images[:count], masks[:count]
    with tempfile.TemporaryDirectory() as folder:
        try:
            weights = search.client.download_artifacts(row.run_id, f"model/{WEIGHTS}", folder)
        except Exception as err:  # noqa: BLE001 - MLflow raises its own and OSError kinds; the panel is optional
            tell(f"No mask panel in the report: the weights of trial {row.trial_id} could not be read ({err})")
            return None
        model = build(row.arch)
        load_model(model, weights)
    model.eval()
    with torch.inference_mode():
        predicted = model(normalize(images, mean=data.mean, std=data.std)).argmax(dim=1)
    name = row.control or row.trial_id
    return SamplePanel(model=f"{name} ({how}, {row.metric} {row.score:.4f}; {row.arch})",
                       images=tuple((images[:, 0].float() / 255).tolist()), truth=tuple(masks.long().tolist()),
                       predicted=tuple(predicted.tolist()), classes=tuple(data.classes))


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
