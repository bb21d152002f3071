"""What a finished search returns: :class:`SearchSummary`, built from Ray's results and the Optuna study's
constraint-aware front (``Study.best_trials``)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass

from ray import tune

from backbones import ArchConfig
from search.confirm.statistics import Confirmed
from search.outcomes import LATENCY_OBJECTIVE, PARETO_TAG, VAL_ACC, Outcome, trial_outcome
from search.records import FinishedTrial
from search.study.searcher import DUPLICATE_ATTR, RAY_TRIAL_ATTR, open_study
from search.tracking.parent import SearchRun


@dataclass
class SearchSummary:
    """What a finished search returns (and prints)."""

    name: str
    parent_run_id: str
    experiment_id: str
    trials: int
    completed: int  # ran the full epoch budget
    early_stopped: int  # stopped by ASHA
    failed: int
    rejected: int  # over a hard budget (constraints.*): probed, never trained
    duplicates: int  # proposals of an architecture already trained: its result reused, nothing trained
    front: list[FinishedTrial]  # Pareto-optimal full-budget trials, latency ascending
    wall_s: float  # the whole command: search, reports and confirmation
    rows: list[FinishedTrial] = dataclasses.field(default_factory=list)  # every full-budget trial (pareto.csv)
    confirmed: list[Confirmed] = dataclasses.field(default_factory=list)  # the confirmation table (plain first)
    verdict: str = ""  # the one sentence that says whether any placement beats the plain backbone
    insight: list[str] = dataclasses.field(default_factory=list)  # the report's placement insight, in words
    report: str = ""  # where report.html is (a local path when the artifact store is local, else its artifact URI)

    @property
    def trained(self) -> int:
        """Distinct architectures trained: the trials that ran at least until ASHA's first rung (not the rejected,
        which never trained, nor the failed, whose training did not give a result; repeated proposals are not
        trials)."""
        return self.completed + self.early_stopped


def summarise_search(results: tune.ResultGrid, *, full_epochs: int, study_storage: str, run_ids: Mapping[str, str],
                     search: SearchRun, wall_s: float, metric: str = VAL_ACC,
                     latency: str = LATENCY_OBJECTIVE) -> SearchSummary:
    """Count the outcomes, flag the front (the study's ``best_trials``) on each full-budget trial's MLflow run
    (``run_ids``: Ray trial id -> run id), and log the counts on the parent run. ``metric``: the search's score
    (plan.score.val); ``latency``: the latency it ranks (plan.score.latency)."""
    rows, counts = [], {outcome: 0 for outcome in Outcome}
    for result in results:
        metrics = result.metrics or {}
        outcome = trial_outcome(metrics, full_epochs=full_epochs, error=result.error is not None)
        counts[outcome] += 1
        if outcome is Outcome.COMPLETED:
            rows.append(FinishedTrial.from_result(metrics, arch=ArchConfig.from_dict(result.config["arch"]),
                                                  run_id=run_ids.get(metrics["trial_id"], ""),
                                                  control=result.config.get("control") or "", metric=metric,
                                                  latency=latency))
    study = open_study(storage=study_storage, name=search.name)
    front_ids = {t.user_attrs.get(RAY_TRIAL_ATTR) for t in study.best_trials}  # constraint-aware, from Optuna
    duplicates = sum(DUPLICATE_ATTR in t.user_attrs for t in study.get_trials(deepcopy=False))
    rows = [dataclasses.replace(row, pareto=row.trial_id in front_ids) for row in rows]
    for row in rows:
        if row.run_id:
            search.set_trial_tag(row.run_id, PARETO_TAG, "true" if row.pareto else "false")
    summary = SearchSummary(
        name=search.name, parent_run_id=search.run_id, experiment_id=search.experiment_id, trials=len(results),
        completed=len(rows), rows=rows, early_stopped=counts[Outcome.EARLY_STOPPED], failed=counts[Outcome.FAILED],
        rejected=counts[Outcome.REJECTED], duplicates=duplicates,
        front=sorted((r for r in rows if r.pareto), key=lambda r: r.ranked_ms), wall_s=wall_s)
    search.log_metrics({"trials": summary.trials, "trials_completed": summary.completed,
                        "trials_early_stopped": summary.early_stopped, "trials_failed": summary.failed,
                        "trials_rejected": summary.rejected, "proposals_duplicate": duplicates,
                        "front_size": len(summary.front), "wall_s": wall_s})
    return summary
