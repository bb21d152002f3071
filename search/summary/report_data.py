"""What the search report shows, as plain data: the one module ``dashboards`` reads the search's results through.

:func:`search.summary.collect.collect_report_data` fills a :class:`ReportData` from the search's stores (the Optuna
study, the MLflow runs, the confirmed table); ``dashboards.report`` only draws it. The names the report needs from
the rest of the search (outcomes, the latency objective, the confirmed rows and their text) are re-exported here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from typing import TYPE_CHECKING

from backbones import NONE  # the attention type of a stage without attention
from search.confirm.statistics import Confirmed, RankAgreement, Verdict, diff_text
from search.outcomes import LATENCY_OBJECTIVE, LATENCY_WORDS, OBJECTIVES, Outcome

if TYPE_CHECKING:
    import optuna

__all__ = ["LATENCY_OBJECTIVE", "LATENCY_WORDS", "NONE", "OBJECTIVES", "Cell", "Confirmed", "Outcome", "PlacementEffects", "PrescreenPoint",
           "RankAgreement", "ReportData", "TrialPoint", "Verdict", "diff_text"]


@dataclass(frozen=True)
class TrialPoint:
    """One trial of the search (a Ray trial with its MLflow run). Metrics are the last reported: the final epoch's
    for a completed trial, the epoch ASHA stopped it after for an early-stopped one, the probe's for a rejected one."""

    trial_id: str  # Ray trial id (the MLflow run name)
    number: int | None  # its Optuna trial number
    run_id: str
    run_url: str  # the run in the MLflow UI ("" when the UI address is not known)
    outcome: Outcome
    arch: str  # ArchConfig string form, e.g. "se/r8 | - | - | -"
    stages: tuple[str, ...]  # the attention type at each stage ("none" where there is none)
    control: str = ""  # the control's name (plain, se_r16, ...), "" for a searched trial
    pareto: bool = False  # on the constraint-aware front of the full-budget trials (Study.best_trials)
    epochs: int = 0  # epochs trained
    score: float | None = None  # the search's score (ReportData.score: val_acc, val_miou), fraction 0-1
    ranked_ms: float | None = None  # the latency the search ranks (ms), named ReportData.latency
    latency_ms: float | None = None  # median raw latency (ms, batch 1)
    params_m: float | None = None  # millions of parameters
    flops_g: float | None = None  # GFLOPs per image
    note: str = ""  # why a trial was rejected or how it failed


@dataclass(frozen=True)
class PrescreenPoint:
    """One architecture the one-shot pre-screen scored (strategy=oneshot): its supernet val_acc and, when it was
    picked and trained in full, its own val_acc."""

    arch: str  # ArchConfig string form
    supernet_val_acc: float  # with the supernet's inherited weights (fraction 0-1)
    ranked_ms: float  # the ranked latency (ReportData.latency), ms
    picked: bool  # among the trials the search trained
    trained_val_acc: float | None = None  # the trial's full-budget val_acc (None: not picked, or not finished)


@dataclass(frozen=True)
class Cell:
    """One stage x type cell of a placement-effect table."""

    n: int  # trials with this type at this stage
    mean: float | None  # their mean metric (None when n == 0)
    effect: float | None  # mean minus the mean of the trials with 'none' at this stage (None when either is empty)


@dataclass(frozen=True)
class PlacementEffects:
    """Per stage (rows, 0 = first) and attention type (columns): the metric's mean difference to 'none' there."""

    metric: str  # the score (val_acc, fraction) or the ranked latency (latency_norm_ms, latency_target_ms; ms)
    trials: str  # which trials were averaged, in words
    types: tuple[str, ...]  # column order, 'none' first
    cells: tuple[tuple[Cell, ...], ...]  # [stage][type]

    def ranked(self, *, largest_first: bool = True) -> list[tuple[int, str, Cell]]:
        """(stage, type, cell) of every cell with an effect, by effect (largest first unless told otherwise)."""
        found = [(stage, kind, cell) for stage, row in enumerate(self.cells) for kind, cell in zip(self.types, row)
                 if kind != NONE and cell.effect is not None]
        return sorted(found, key=lambda item: item[2].effect, reverse=largest_first)


@dataclass(frozen=True)
class SamplePanel:
    """A few test images with their true and predicted masks (a segmentation search; ``trials.TRIAL_TASKS``' panel),
    as nested lists so the report needs no torch: ``images[i][y][x]`` (0-1, first channel), ``truth``/``predicted``
    ``[i][y][x]`` class indices named by ``classes``."""

    model: str  # which model predicted, e.g. "trial 1a2b (front, val_miou 0.61)"
    images: tuple[Any, ...]
    truth: tuple[Any, ...]
    predicted: tuple[Any, ...]
    classes: tuple[str, ...]


@dataclass(frozen=True)
class ReportData:
    """Everything the search report shows (see ``dashboards.write_report``)."""

    title: str
    search: str  # the search's name
    study: optuna.Study  # the search's study: hypervolume history (optuna.visualization)
    points: tuple[TrialPoint, ...]  # every Ray trial of the search, in start order
    duplicates: int  # proposals that repeated an architecture (told its result, never trained: no point here)
    accuracy_effects: PlacementEffects
    latency_effects: PlacementEffects
    importances: Mapping[str, Mapping[str, float]]  # objective -> knob -> importance (sums to 1 per objective)
    importance_note: str  # how they were computed, or why there are none
    reference_point: tuple[float, float]  # hypervolume reference, in the objectives' order (score, ranked latency)
    confirmed: tuple[Confirmed, ...] = ()  # the confirmation table (plain first); empty without confirmation
    verdict: str = ""  # the confirmation's one-sentence answer
    noise: float | None = None  # the plain backbone's test_acc std over the confirmation seeds (fraction)
    # Kendall tau of the search's val_acc vs the confirmed mean test_acc over the confirmed rows (None: no confirmation)
    rank_agreement: RankAgreement | None = None
    experiment_url: str = ""  # the experiment in the MLflow UI, on its training-runs view
    prescreen: tuple[PrescreenPoint, ...] = ()  # strategy=oneshot: the supernet's ranking, best first
    prescreen_tau: float | None = None  # Kendall tau of supernet vs trained val_acc over the picks trained in full
    score: str = "val_acc"  # the name of TrialPoint.score and of the accuracy effects (search.outcomes.Score.val)
    test_score: str = "test_acc"  # the name of the confirmed figures (search.outcomes.Score.test)
    latency: str = LATENCY_OBJECTIVE  # the name of TrialPoint.ranked_ms (search.outcomes.Score.latency)
    samples: SamplePanel | None = None  # a segment search: test scenes with their masks, true and predicted
