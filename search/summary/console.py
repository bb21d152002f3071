"""What the search prints around its phases: the start lines, the resume line and the final summary (the per-trial
lines while trials run are :mod:`search.execution.progress`)."""

from __future__ import annotations

from typing import Any

from search.confirm.phase import confirm_budget_text, confirms_larger
from search.confirm.statistics import Confirmed, Verdict, diff_text, rank_agreement
from search.log import tell
from search.outcomes import (ACCURACY, CONFIRM_ROLE, FLOPS_G, LATENCY_MS, LATENCY_TARGET, LATENCY_TARGET_MEASURED,
                             PARAMS_M, TRIAL_ROLE, Score, test_split_text)
from search.settings.plan import SearchPlan
from search.settings.terminal import format_table
from search.study.optuna_dashboard import study_hint
from search.summary.front import SearchSummary
from search.tracking.links import experiment_url, ui_hint
from search.tracking.parent import SearchRun, ended_trials


def announce(plan: SearchPlan) -> None:
    """The first lines: what is searched, with which budget, and where to watch the study."""
    b = plan.budget
    where = ("CUDA device found: using the GPU budget" if plan.hardware == "cuda"
             else "No CUDA device: using the CPU budget")
    size = "all" if b.train_size is None else f"{b.train_size}"
    tell(f"Search {plan.name}: space {plan.space.name} on {plan.space.dataset}, sampler {plan.study.sampler}")
    tell(f"{where} ({b.backbone}, {size} train / {b.val_size} val images, {b.epochs} epochs, {b.trials} trials, "
         f"{plan.execution.concurrency} at once)")
    if plan.confirm.top_k and confirms_larger(plan):
        tell(f"The confirmation's budget is larger than the search's: {confirm_budget_text(plan)}")
    tell(f"Watch the study live:  {study_hint(storage=plan.study.storage)}")


def announce_resume(plan: SearchPlan, search: SearchRun, *, controls: int) -> None:
    """How far the earlier, interrupted command of this search got."""
    searched, confirming = search.existing_runs(role=TRIAL_ROLE), search.existing_runs(role=CONFIRM_ROLE)
    ended = len(ended_trials(searched))
    total = plan.budget.trials + controls
    tell(f"Resuming search {plan.name}: {ended} of {total} trials (controls included) had finished, "
         f"{len(searched) - ended} were cut off (Ray restarts those it had recorded)"
         + (f"; {len(ended_trials(confirming))} confirmation runs had finished" if confirming else ""))


def print_summary(summary: SearchSummary, *, plan: SearchPlan) -> None:
    """The end: counts, the Pareto front, the confirmed table and its verdict, the insight, where everything is."""
    tell(f"\nSearch {summary.name} finished in {summary.wall_s:.0f}s: {summary.trials} trials, "
         f"{summary.completed} completed, {summary.early_stopped} stopped early by ASHA, {summary.failed} failed"
         + (f", {summary.rejected} rejected by the constraints" if summary.rejected else "")
         + f"; {summary.trained} distinct architectures trained"
         + (f", {summary.duplicates} repeated proposals reused their earlier result." if summary.duplicates else "."))
    stages = f"stages 0..{plan.space.num_stages - 1}"
    score = plan.score
    if summary.front:
        tell(f"Pareto front ({len(summary.front)} of {summary.completed} full-budget trials, {plan.budget.backbone}):")
        tell(format_table([row.cells() for row in summary.front], [
            ("trial_id", "trial", "s"), (score.val, score.val, ".4f"), (score.latency, score.latency, ".2f"),
            (LATENCY_MS, LATENCY_MS, ".2f"), (PARAMS_M, PARAMS_M, ".3f"), (FLOPS_G, FLOPS_G, ".3f"),
            ("control", "control", "s"), ("arch", stages, "s")]))
    else:
        tell("No trial completed its full budget, so there is no Pareto front (see the failed runs in MLflow).")
    if summary.confirmed:
        tell(f"\nConfirmed on {test_split_text(len(plan.confirm.data.test_y), dataset=plan.space.dataset)}, retrained from scratch per seed; "
             f"{score.test} mean ± std, 95% interval of the paired difference to the plain backbone:")
        tell(format_table([confirmed_row(row, score=score) for row in summary.confirmed], [
            ("name", "confirmed", "s"), ("seeds", "seeds", "s"), (score.test, score.test, "s"),
            ("search_val_acc", f"search {score.val}", ".4f"), ("diff", "diff vs plain [95% CI]", "s"),
            ("verdict", "verdict", "s"), (LATENCY_MS, LATENCY_MS, ".2f"),
            ("onnx_ms", "onnxruntime_ms", ".2f"),
            *(((LATENCY_TARGET, "target_ms predicted", ".2f"), (LATENCY_TARGET_MEASURED, "measured", ".2f"))
              if score.latency == LATENCY_TARGET else ()),
            ("arch", stages, "s")]))
        tell(f"\n{summary.verdict}")
        tell(rank_agreement(summary.confirmed).text(val=score.val, test=score.test))
    if summary.insight:
        tell("\nPlacement insight (hints from few trials, not significant effects; the report has the heatmaps):")
        tell("\n".join(f"  {line}" for line in summary.insight))
    if summary.report:
        tell(f"\nSearch report (opens offline): {summary.report}")
    tell(f"MLflow UI:  {ui_hint(tracking_uri=plan.mlflow.tracking_uri)}")
    tell(f"  the runs table with the search's columns: "
         f"{experiment_url(tracking_uri=plan.mlflow.tracking_uri, experiment_id=summary.experiment_id)}")
    tell(f"Optuna study:  {study_hint(storage=plan.study.storage)}")
    if summary.front:
        what = "the confirmed pick" if summary.confirmed else f"the front model of highest {score.val}"
        tell(f"Export {what}:  python -m search.export")
    if summary.confirmed and plan.hardware == "cpu":
        tell(cpu_resolution_line(summary.confirmed, score=plan.score))


def cpu_resolution_line(confirmed: list[Confirmed], *, score: Score = ACCURACY) -> str:
    """The last line of a CPU search: what its confirmation could resolve (in ``score``'s points), and where finer
    answers come from."""
    widths = [row.diff_half_width for row in confirmed
              if row.verdict is not Verdict.REFERENCE and row.diff_half_width is not None]
    seeds = max((row.n_paired for row in confirmed if row.verdict is not Verdict.REFERENCE), default=0)
    resolved = (f"resolves differences to the plain backbone of about ±{100 * max(widths):.1f} {score.points()} (95%, "
                f"{seeds} seeds)" if widths else f"cannot resolve a difference to the plain backbone ({seeds} seed)")
    return (f"The CPU budget {resolved}; answers below about a point need the GPU budget (a CUDA machine picks it "
            f"up: docs/gpu.md).")


def confirmed_row(row: Confirmed, *, score: Score = ACCURACY) -> dict[str, Any]:
    """One confirmed architecture as the summary table's cells (its test score under ``score.test``)."""
    return {"name": row.name, "seeds": str(row.n), "verdict": str(row.verdict), LATENCY_MS: row.latency_ms,
            "onnx_ms": row.latency_onnxruntime_ms, "search_val_acc": row.search_val_acc,
            LATENCY_TARGET: row.latency_target_ms, LATENCY_TARGET_MEASURED: row.latency_target_measured_ms,
            "arch": row.arch_text,
            score.test: "n/a" if row.mean is None else f"{row.mean:.4f} ± {row.std or 0:.4f}",
            "diff": "" if row.verdict is Verdict.REFERENCE else diff_text(row)}
