"""The search report's data, gathered from the search's stores: the Optuna study, the MLflow runs, the confirmation.

:func:`collect_report_data` reads everything once into a :class:`ReportData` (``search.summary.report_data``);
``dashboards.write_report`` only plots it. The sums here are the ones no library does for us:

- **placement effects** (:func:`placement_effects`): for each stage and attention type, the mean of a metric over the
  trials with that type at that stage, minus the mean over the trials with no attention there (``none``). A marginal
  mean over few trials, confounded by what the other stages hold: a hint where to look, not a measured effect.
- **importances** (:func:`param_importances`): Optuna's own evaluator (``optuna.importance``, PED-ANOVA by default,
  which also weighs conditional knobs such as ``s2.reduction``) over the distinct feasible full-budget trials.

Hypervolume and the Pareto front come from Optuna as well (``dashboards.report`` plots
``optuna.visualization.plot_hypervolume_history`` over the study; the front is ``Study.best_trials``).
"""

from __future__ import annotations

import csv
import json
import math
import statistics
import tempfile
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import mlflow
import optuna
from optuna.trial import TrialState

from backbones import NONE, ArchConfig
from search.confirm.statistics import Confirmed, Verdict, rank_agreement
from search.outcomes import (CONTROL_TAG, EPOCHS_RUN_TAG, ERROR_TAG, FLOPS_G, LATENCY_MS, LATENCY_OBJECTIVE, OBJECTIVES,
                             OUTCOME_TAG, PARAMS_M, PARETO_TAG, REJECTED_BECAUSE_TAG, ROLE_TAG, SUPERNET_ROLE,
                             TRIAL_ROLE, TRIAL_TAG, VAL_ACC, ACCURACY, Outcome, Score)
from search.study.searcher import ARCH_ATTR, CUT_OFF_ATTR, DUPLICATE_ATTR
from search.summary.report_data import Cell, PlacementEffects, PrescreenPoint, ReportData, SamplePanel, TrialPoint
from search.tracking.parent import trial_runs

HYPERVOLUME_MARGIN = 1.1  # the hypervolume's reference latency: this times the slowest feasible full-budget trial
MIN_TRIALS_FOR_IMPORTANCE = 3  # fewer distinct full-budget trials: no importances (nothing to compare)


def collect_report_data(*, study: optuna.Study, client: mlflow.MlflowClient, experiment_id: str, parent_run_id: str,
                        num_stages: int, types: Sequence[str], title: str, run_url: Callable[[str], str] = lambda _: "",
                        experiment_url: str = "", confirmed: Sequence[Confirmed] = (), verdict: str = "",
                        score: Score = ACCURACY, samples: SamplePanel | None = None) -> ReportData:
    """Read the study and the search's MLflow trial runs into a :class:`ReportData`.

    ``types``: the attention types the space offers (heatmap columns); ``run_url``: MLflow run id -> its UI address;
    ``score``: the search's (plan.score); ``samples``: the test-scene panel of a segment search.
    """
    by_number = {t.number: t for t in study.get_trials(deepcopy=False)}
    runs = [run for run in trial_runs(client, experiment=experiment_id, parent_run_id=parent_run_id).values()
            if run.data.tags.get(ROLE_TAG) == TRIAL_ROLE]
    points = [_point(run, by_number, num_stages=num_stages, run_url=run_url, metric=score.val, latency=score.latency)
              for run in sorted(runs, key=lambda r: r.info.start_time)]
    reference = _reference_point(study)
    importances, note = param_importances(study, objectives=score.objectives)
    plain = next((row for row in confirmed if row.verdict is Verdict.REFERENCE), None)
    columns = tuple(dict.fromkeys([NONE, *types]))
    full = [p for p in points if p.outcome is Outcome.COMPLETED]
    timed = [p for p in points if p.ranked_ms is not None]
    return ReportData(
        title=title, search=study.study_name, study=study, points=tuple(points),
        duplicates=sum(DUPLICATE_ATTR in t.user_attrs for t in by_number.values()),
        accuracy_effects=placement_effects(full, metric="score", name=score.val, types=columns, num_stages=num_stages,
                                           trials=f"{len(full)} full-budget trials"),
        latency_effects=placement_effects(timed, metric="ranked_ms", name=score.latency, types=columns,
                                          num_stages=num_stages, trials=f"{len(timed)} trials with a latency (early-stopped included)"),
        importances=importances, importance_note=note, reference_point=reference, confirmed=tuple(confirmed),
        verdict=verdict, noise=plain.std if plain else None, experiment_url=experiment_url,
        rank_agreement=rank_agreement(confirmed) if confirmed else None,
        score=score.val, test_score=score.test, latency=score.latency, samples=samples,
        **_prescreen(client, experiment_id=experiment_id, parent_run_id=parent_run_id, points=points,
                     latency=score.latency))


def _prescreen(client: mlflow.MlflowClient, *, experiment_id: str, parent_run_id: str,
               points: Sequence[TrialPoint], latency: str = LATENCY_OBJECTIVE) -> dict[str, Any]:
    """The supernet run's ranking (strategy=oneshot), joined with the trials' own full-budget val_acc."""
    runs = client.search_runs([experiment_id], max_results=1, filter_string=(
        f"tags.mlflow.parentRunId = '{parent_run_id}' and tags.`{ROLE_TAG}` = '{SUPERNET_ROLE}'"))
    if not runs:
        return {}
    with tempfile.TemporaryDirectory() as folder:
        with open(client.download_artifacts(runs[0].info.run_id, "ranking.csv", folder), newline="") as handle:
            rows = list(csv.DictReader(handle))
    trained = {p.arch: p.score for p in points if p.outcome is Outcome.COMPLETED and not p.control}
    ranking = tuple(PrescreenPoint(arch=r["arch"], supernet_val_acc=float(r["supernet_val_acc"]),
                                   ranked_ms=float(r[latency]), picked=r["picked"] == "True",
                                   trained_val_acc=trained.get(r["arch"])) for r in rows)
    return {"prescreen": ranking, "prescreen_tau": runs[0].data.metrics.get("kendall_vs_trials")}


def _point(run: mlflow.entities.Run, trials: Mapping[int, optuna.trial.FrozenTrial], *, num_stages: int,
           run_url: Callable[[str], str], metric: str = VAL_ACC, latency: str = LATENCY_OBJECTIVE) -> TrialPoint:
    tags, metrics, params = run.data.tags, run.data.metrics, run.data.params
    number = int(params["optuna_trial"]) if "optuna_trial" in params else None
    trial = trials.get(number) if number is not None else None
    if trial is not None and ARCH_ATTR in trial.user_attrs:
        arch = ArchConfig.from_dict(json.loads(trial.user_attrs[ARCH_ATTR]))
        stages = tuple(s.attn or NONE for s in arch.stages)
        text = str(arch)
    else:  # not in the study (should not happen): the params the run was logged with
        stages = tuple(params.get(f"s{i}.attn", NONE) or NONE for i in range(num_stages))
        text = " | ".join("-" if s == NONE else s for s in stages)
    try:
        outcome = Outcome(tags.get(OUTCOME_TAG, Outcome.INTERRUPTED.value))
    except ValueError:
        outcome = Outcome.INTERRUPTED
    return TrialPoint(
        trial_id=tags.get(TRIAL_TAG, run.info.run_name), number=number, run_id=run.info.run_id,
        run_url=run_url(run.info.run_id), outcome=outcome, arch=text, stages=stages,
        control=tags.get(CONTROL_TAG, ""), pareto=tags.get(PARETO_TAG) == "true",
        epochs=int(tags.get(EPOCHS_RUN_TAG, 0) or 0),
        score=metrics.get(metric), ranked_ms=metrics.get(latency),
        **{key: metrics.get(key) for key in (LATENCY_MS, PARAMS_M, FLOPS_G)},
        note=tags.get(REJECTED_BECAUSE_TAG) or tags.get(ERROR_TAG) or "")


def placement_effects(points: Sequence[TrialPoint], *, metric: str, types: Sequence[str], num_stages: int,
                      trials: str, name: str | None = None) -> PlacementEffects:
    """The :class:`PlacementEffects` of ``metric`` (a TrialPoint field) over ``points`` (those with a value for it),
    named ``name`` (default: ``metric``; the score field is named by the search's score, val_acc or val_miou)."""
    values = [(p.stages, getattr(p, metric)) for p in points if getattr(p, metric) is not None]
    rows = []
    for stage in range(num_stages):
        means = {}
        for kind in types:
            group = [v for stages, v in values if stage < len(stages) and stages[stage] == kind]
            means[kind] = (len(group), statistics.fmean(group) if group else None)
        base = means[NONE][1] if NONE in means else None
        rows.append(tuple(Cell(n=n, mean=mean, effect=None if mean is None or base is None else mean - base)
                          for n, mean in means.values()))
    return PlacementEffects(metric=name or metric, trials=trials, types=tuple(types), cells=tuple(rows))


def param_importances(study: optuna.Study,
                      objectives: Mapping[str, str] = OBJECTIVES) -> tuple[dict[str, dict[str, float]], str]:
    """Each objective's knob importances (Optuna's default evaluator, PED-ANOVA) over the study's distinct, feasible,
    full-budget trials that the sampler drew (controls enqueued with the space's parameters count; repeated
    proposals, rejected and cut-off trials do not); and a note saying so, or why there are none."""
    trials = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
              if t.params and DUPLICATE_ATTR not in t.user_attrs and CUT_OFF_ATTR not in t.user_attrs
              and not any(v > 0 for v in t.constraints.values())]
    if len(trials) < MIN_TRIALS_FOR_IMPORTANCE:
        return {}, (f"no importances: {len(trials)} distinct feasible full-budget trials with parameters "
                    f"(needs {MIN_TRIALS_FOR_IMPORTANCE})")
    distinct = optuna.create_study(directions=study.directions)  # in memory: the trials to weigh, nothing else
    distinct.add_trials(trials)
    importances = {}
    with warnings.catch_warnings(record=True) as caught:  # "regimes with fewer than 2 trials": said in the note
        warnings.simplefilter("always", UserWarning)
        for index, metric in enumerate(objectives):
            importances[metric] = dict(optuna.importance.get_param_importances(
                distinct, target=lambda t, i=index: t.values[i]))
    sparse = sorted({str(w.message).split("`")[1] for w in caught if str(w.message).count("`") >= 2})
    rough = (f"; Optuna warns that {len(sparse)} knobs have values tried by fewer than 2 of them, so their importance "
             f"is rough" if sparse else "")
    return importances, (f"optuna.importance.get_param_importances (PED-ANOVA) over {len(trials)} distinct feasible "
                         f"full-budget trials{rough}")


def _reference_point(study: optuna.Study) -> tuple[float, float]:
    """Hypervolume reference (the score, the ranked latency): score 0 and HYPERVOLUME_MARGIN x the slowest feasible
    full-budget trial, so every feasible full-budget trial adds to the hypervolume."""
    latencies = [t.values[1] for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
                 if not any(v > 0 for v in t.constraints.values()) and math.isfinite(t.values[1])]
    return 0.0, HYPERVOLUME_MARGIN * max(latencies, default=1.0)


def insight_lines(data: ReportData, *, top: int = 3) -> list[str]:
    """The placement insight in words (printed at the end of a search): the largest accuracy effects, the costliest
    placements and the most important knob per objective."""
    lines = []
    acc = data.accuracy_effects.ranked()[:top]
    if acc:
        lines.append(f"{data.score} vs no attention at the same stage ({data.accuracy_effects.trials}): "
                     + ", ".join(f"s{stage}={kind} {cell.effect:+.3f} (n={cell.n})" for stage, kind, cell in acc))
    cost = data.latency_effects.ranked()[:top]
    if cost:
        lines.append(f"{data.latency} vs no attention at the same stage ({data.latency_effects.trials}): "
                     + ", ".join(f"s{stage}={kind} {cell.effect:+.2f} ms (n={cell.n})" for stage, kind, cell in cost))
    for metric, weights in data.importances.items():
        best = list(weights.items())[:top]
        if best:
            lines.append(f"most important knobs for {metric}: " + ", ".join(f"{k} {v:.2f}" for k, v in best))
    if not data.importances:
        lines.append(data.importance_note)
    return lines

