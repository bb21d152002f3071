"""The search report's builder and page on a real small Optuna study, a real MLflow store and hand-made numbers."""

from __future__ import annotations

import json
import re
from pathlib import Path

import mlflow
import optuna
import pytest
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID
from optuna.trial import TrialState

from backbones import ArchConfig, StageConfig
from dashboards import write_report
from dashboards.report import trials_figure
from dashboards.ui import experiment_url, run_url
from search.confirm.statistics import confirmation_statistics
from search.outcomes import Outcome
from search.summary.collect import collect_report_data, insight_lines, param_importances, placement_effects
from search.summary.report_data import NONE, TrialPoint
from search.study.searcher import ARCH_ATTR, DUPLICATE_ATTR, study_directions
from search.tracking.parent import RUNS_VIEW_COLUMNS, RUNS_VIEW_KEY, experiment_id

TYPES = (NONE, "se", "eca")


def _point(stages: tuple[str, ...], acc: float | None, ms: float, outcome: Outcome = Outcome.COMPLETED) -> TrialPoint:
    return TrialPoint(trial_id="t", number=0, run_id="r", run_url="", outcome=outcome, arch="a", stages=stages,
                      score=acc, ranked_ms=ms)


def test_placement_effects_are_differences_of_means_to_none_at_the_same_stage() -> None:
    points = [_point((NONE, "se"), 0.5, 1.0), _point((NONE, NONE), 0.4, 1.0), _point(("se", NONE), 0.6, 2.0),
              _point(("se", "se"), 0.7, 3.0)]
    effects = placement_effects(points, metric="score", name="val_acc", types=TYPES, num_stages=2, trials="4")
    se, eca = effects.types.index("se"), effects.types.index("eca")
    assert effects.cells[0][se].n == 2 and effects.cells[0][se].mean == pytest.approx(0.65)
    assert effects.cells[0][se].effect == pytest.approx(0.65 - 0.45)
    assert effects.cells[1][se].effect == pytest.approx(0.6 - 0.5)
    assert effects.cells[0][eca].n == 0 and effects.cells[0][eca].effect is None  # never drawn: no effect
    assert [(stage, kind) for stage, kind, _ in effects.ranked()] == [(0, "se"), (1, "se")]
    latency = placement_effects(points, metric="ranked_ms", name="latency_norm_ms", types=TYPES, num_stages=2, trials="4")
    assert latency.cells[0][se].effect == pytest.approx(2.5 - 1.0)


def test_no_effect_without_a_baseline_at_that_stage() -> None:
    effects = placement_effects([_point(("se",), 0.5, 1.0), _point(("eca",), 0.6, 1.0)], metric="score",
                                types=TYPES, num_stages=1, trials="2")
    assert all(cell.effect is None for cell in effects.cells[0]) and effects.ranked() == []


def _study(storage: str, *, name: str = "s") -> optuna.Study:
    """A real study like the searcher's: conditional knobs, a duplicate, a rejected, a pruned and a failed trial."""
    study = optuna.create_study(storage=storage, study_name=name, directions=study_directions(),
                                sampler=optuna.samplers.RandomSampler(seed=0))
    for i in range(9):
        trial = study.ask()
        stages = []
        for s in range(2):
            kind = trial.suggest_categorical(f"s{s}.attn", list(TYPES))
            if kind == "se":
                stages.append(StageConfig(attn="se", reduction=trial.suggest_categorical(f"s{s}.reduction", [4, 8])))
            elif kind == "eca":
                stages.append(StageConfig(attn="eca", kernel_size=trial.suggest_categorical(f"s{s}.kernel_size",
                                                                                             [3, 5])))
            else:
                stages.append(StageConfig())
        arch = ArchConfig(backbone="resnet10t", in_chans=1, num_classes=10, stages=tuple(stages))
        trial.set_user_attr(ARCH_ATTR, arch.to_json())
        if i == 6:
            study.tell(trial, state=TrialState.PRUNED)
        elif i == 7:
            study.tell(trial, state=TrialState.FAIL)
        elif i == 8:  # rejected by a hard budget: told accuracy 0 and a positive violation
            trial.set_constraint("max_latency_ms", 1.5)
            study.tell(trial, [0.0, 9.0])
        else:
            trial.set_constraint("max_latency_ms", 0.0)
            study.tell(trial, [0.5 + 0.05 * i, 1.0 + 0.3 * (i % 3)])
    duplicate = study.ask()
    duplicate.set_user_attr(DUPLICATE_ATTR, 0)
    study.tell(duplicate, study.trials[0].values)
    return study


def test_importances_weigh_conditional_knobs_and_leave_out_repeats_and_rejected(tmp_path: Path) -> None:
    study = _study(f"sqlite:///{tmp_path / 'optuna.db'}")
    importances, note = param_importances(study)
    assert set(importances) == {"val_acc", "latency_norm_ms"}
    for weights in importances.values():
        assert set(weights) <= {"s0.attn", "s1.attn", "s0.reduction", "s1.reduction", "s0.kernel_size",
                                "s1.kernel_size"} and "s0.attn" in weights
        assert sum(weights.values()) == pytest.approx(1.0)
    assert "over 6 distinct feasible full-budget trials" in note  # 10 asked - duplicate, rejected, pruned, failed


def test_too_few_trials_give_no_importances_and_say_why() -> None:
    study = optuna.create_study(directions=study_directions())
    study.add_trial(optuna.trial.create_trial(params={"s0.attn": "se"}, values=[0.5, 1.0], distributions={
        "s0.attn": optuna.distributions.CategoricalDistribution(list(TYPES))}))
    assert param_importances(study) == ({}, "no importances: 1 distinct feasible full-budget trials with "
                                            "parameters (needs 3)")


@pytest.fixture()
def stores(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[optuna.Study, mlflow.MlflowClient, str, str]:
    """The study above and a real MLflow store with a parent run and one trial run per Optuna trial the search
    would have run (not the duplicate), tagged as the search's callback tags them."""
    monkeypatch.chdir(tmp_path)
    study = _study(f"sqlite:///{tmp_path / 'optuna.db'}", name="demo")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = mlflow.MlflowClient(tracking_uri=uri)
    experiment = experiment_id(client, name="attnas", tracking_uri=uri)
    parent = client.create_run(experiment, run_name="demo", tags={"attnas.role": "search"}).info.run_id
    outcomes = {6: Outcome.EARLY_STOPPED, 7: Outcome.FAILED, 8: Outcome.REJECTED}
    best = {t.number for t in study.best_trials}
    for trial in study.trials[:9]:
        outcome = outcomes.get(trial.number, Outcome.COMPLETED)
        tags = {MLFLOW_PARENT_RUN_ID: parent, "attnas.role": "trial", "attnas.trial_id": f"ray{trial.number}",
                "attnas.outcome": str(outcome), "attnas.epochs_run": "1" if outcome is Outcome.EARLY_STOPPED else "2"}
        if outcome is Outcome.COMPLETED:
            tags["pareto"] = "true" if trial.number in best else "false"
        if trial.number == 0:
            tags["attnas.control"] = "plain"
        if outcome is Outcome.REJECTED:
            tags["attnas.rejected_because"] = "latency 9.0 ms > max_latency_ms 7.5"
        if outcome is Outcome.FAILED:
            tags["attnas.error"] = "TrialDiverged: loss is nan"
        run = client.create_run(experiment, run_name=f"ray{trial.number}", tags=tags).info.run_id
        client.log_param(run, "optuna_trial", str(trial.number))
        if outcome is not Outcome.FAILED:
            acc, ms = trial.values if trial.values else (0.42, 1.7)
            client.log_metric(run, "latency_norm_ms", ms)
            client.log_metric(run, "latency_ms", ms * 1.1)
            if outcome is not Outcome.REJECTED:
                client.log_metric(run, "val_acc", acc)
    return study, client, experiment, parent


def _report_data(stores, **extra):
    study, client, experiment, parent = stores
    return collect_report_data(
        study=study, client=client, experiment_id=experiment, parent_run_id=parent, num_stages=2, types=TYPES,
        title="demo: val_acc vs latency_norm_ms",
        run_url=lambda run: run_url(tracking_uri="sqlite:///mlflow.db", experiment_id=experiment, run_id=run),
        experiment_url=experiment_url(tracking_uri="sqlite:///mlflow.db", experiment_id=experiment), **extra)


def test_collect_reads_every_trial_run_with_its_outcome_and_last_values(stores) -> None:
    data = _report_data(stores)
    assert len(data.points) == 9 and data.duplicates == 1
    by_id = {p.trial_id: p for p in data.points}
    stopped = by_id["ray6"]
    assert stopped.outcome is Outcome.EARLY_STOPPED and stopped.score == 0.42 and stopped.epochs == 1
    assert by_id["ray8"].outcome is Outcome.REJECTED and by_id["ray8"].score is None
    assert by_id["ray8"].note.startswith("latency 9.0 ms") and by_id["ray7"].note.startswith("TrialDiverged")
    assert by_id["ray0"].control == "plain"
    assert by_id["ray0"].run_url == f"http://127.0.0.1:5000/#/experiments/{stores[2]}/runs/{by_id['ray0'].run_id}"
    assert {p.trial_id for p in data.points if p.pareto} == {f"ray{t.number}" for t in stores[0].best_trials}
    assert data.accuracy_effects.trials == "6 full-budget trials"
    assert data.latency_effects.trials.startswith("8 trials with a latency")  # early-stopped and rejected too
    assert data.reference_point == (0.0, pytest.approx(1.1 * 1.6))  # the slowest feasible full-budget trial x 1.1
    lines = insight_lines(data)
    assert any(line.startswith("most important knobs for val_acc: ") for line in lines)


def test_the_page_is_self_contained_and_has_every_part(stores, tmp_path: Path) -> None:
    confirmed = confirmation_statistics({"plain": {1: 0.80, 2: 0.82, 3: 0.81}, "ray3": {1: 0.84, 2: 0.85, 3: 0.86}},
                                        reference="plain", latency_ms={"plain": 1.0, "ray3": 1.4})
    data = _report_data(stores, confirmed=confirmed, verdict="ray3 beats the plain backbone by +0.040 test_acc.")
    page = write_report(data, folder=tmp_path / "out").read_text()
    assert not re.search(r"<script[^>]+src=", page)  # plotly.js inlined, no CDN: it opens offline
    for div in ("plot-front", "plot-placement", "plot-importance", "plot-hypervolume"):
        assert f'id="{div}"' in page
    assert page.count("<tr>") == 1 + 2 + 1 + 2  # confirmed: head + 2 rows; not plotted: head + rejected + failed
    assert "ray3 beats the plain backbone" in page and "TrialDiverged" in page
    assert "viewStateShareKey" in page  # the link to the runs in MLflow
    assert "plotly_click" in page  # a click opens the run (customdata[0])
    figure = trials_figure(data)
    names = {trace.name for trace in figure.data}
    assert {"stopped early (last epoch's value)", "front (step)", "confirmed: reference", "confirmed: better"} <= names
    step = next(trace for trace in figure.data if trace.name == "front (step)")
    assert step.line.shape == "hv" and list(step.x) == sorted(step.x)
    better = next(trace for trace in figure.data if trace.name == "confirmed: better")
    assert better.error_y.array[0] == pytest.approx(confirmed[1].ci_high - confirmed[1].mean)


def test_mlflow_experiment_opens_on_training_runs_with_our_columns(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = mlflow.MlflowClient(tracking_uri=uri)
    client.create_experiment("old")  # made before this code: tagged when a search uses it
    for name in ("attnas", "old"):
        tags = client.get_experiment(experiment_id(client, name=name, tracking_uri=uri)).tags
        assert tags["mlflow.experimentKind"] == "custom_model_development"
        view = json.loads(tags[f"mlflow.sharedViewState.{RUNS_VIEW_KEY}"])
        assert isinstance(view["name"], str) and isinstance(view["createdAt"], int)
        assert json.loads(view["state"])["selectedColumns"] == list(RUNS_VIEW_COLUMNS)
    assert experiment_url(tracking_uri=uri, experiment_id="3") == (
        "http://127.0.0.1:5000/#/experiments/3/runs?workflowType=machine_learning&viewStateShareKey=attnas-runs")
