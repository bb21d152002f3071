"""Ray Tune wiring: the trainable, the Optuna searcher (multi-objective) and ASHA early stopping.

Optuna (https://optuna.org) proposes architectures; ASHA (https://arxiv.org/abs/1810.05934) stops weak trials at
rungs of ``val_acc``. Only trials that ran their full epoch budget reach Optuna as COMPLETE: a trial ASHA stopped is
told as PRUNED, so the sampler never mistakes a partial accuracy for a final one.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from collections.abc import Callable, Mapping
from typing import Any

import optuna
import torch
from ray import tune
from ray.tune.schedulers import ASHAScheduler
from ray.tune.search.optuna import OptunaSearch

from backbones import build
from search.artifacts import load_metrics, save_checkpoint
from search.pareto import OBJECTIVES
from spaces import SearchSpace
from trials import TensorData, TrialBudget, run_trial

SAMPLERS: dict[str, Callable[..., optuna.samplers.BaseSampler]] = {
    # Tree-structured Parzen estimator; handles the conditional knobs natively (https://arxiv.org/abs/2304.11127).
    "tpe": lambda *, seed, trials: optuna.samplers.TPESampler(seed=seed, n_startup_trials=min(10, max(2, trials // 3))),
    # NSGA-II (https://doi.org/10.1109/4235.996017); two generations at least within the trial budget.
    "nsga2": lambda *, seed, trials: optuna.samplers.NSGAIISampler(seed=seed, population_size=max(4, min(50, trials // 2))),
    "random": lambda *, seed, trials: optuna.samplers.RandomSampler(seed=seed),
}


class FullBudgetOptunaSearch(OptunaSearch):
    """OptunaSearch that tells a trial stopped before ``full_epochs`` as PRUNED instead of COMPLETE."""

    def __init__(self, *, full_epochs: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.full_epochs = full_epochs

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        stopped_early = bool(result) and not error and int(result.get("epoch", 0)) < self.full_epochs
        if stopped_early and trial_id in self._ot_trials and trial_id not in self._completed_trials:
            self._ot_study.tell(self._ot_trials[trial_id], state=optuna.trial.TrialState.PRUNED)
            self._completed_trials.add(trial_id)
            return
        super().on_trial_complete(trial_id, result=result, error=error)


@dataclass(frozen=True)
class _DefineByRun:
    """Optuna define-by-run function (a picklable object: Ray saves the searcher with the experiment)."""

    space: SearchSpace
    arch_fields: dict[str, Any]

    def __call__(self, trial: Any) -> dict[str, Any]:
        return {"arch": self.space.to_arch(self.space.suggest(trial), **self.arch_fields)}


def make_searcher(*, space: SearchSpace, sampler: str, seed: int, trials: int, full_epochs: int,
                  arch_fields: Mapping[str, Any]) -> FullBudgetOptunaSearch:
    """The searcher: ``space.suggest`` as Optuna's define-by-run function; the ArchConfig rides along as ``arch``."""
    return FullBudgetOptunaSearch(
        full_epochs=full_epochs,
        space=_DefineByRun(space=space, arch_fields=dict(arch_fields)),
        metric=list(OBJECTIVES),
        mode=list(OBJECTIVES.values()),
        sampler=SAMPLERS[sampler](seed=seed, trials=trials),
        seed=seed,
    )


def make_scheduler(*, full_epochs: int, grace_period: int, reduction_factor: float) -> ASHAScheduler:
    """ASHA on ``val_acc``, one rung unit per epoch (each trial reports once per epoch)."""
    return ASHAScheduler(
        time_attr="training_iteration",
        metric="val_acc",
        mode="max",
        max_t=full_epochs,
        grace_period=min(grace_period, full_epochs),
        reduction_factor=reduction_factor,
    )


def train_architecture(config: dict[str, Any], *, data: TensorData, budget: TrialBudget) -> None:
    """Ray trainable: build ``config["arch"]``, run the plain trial, report every epoch to Tune.

    The final epoch's report carries a checkpoint (weights + reference input/output + arch + metrics) that the
    MLflow callback uploads and ``search.export`` rebuilds from. When Ray restores a trial that already reached
    that checkpoint (the driver was killed before it recorded the trial as finished), the trial is not trained
    again: its saved final metrics are reported once more with the same checkpoint.
    """
    arch = config["arch"]
    if (restored := tune.get_checkpoint()) is not None:
        with restored.as_directory() as folder:
            final = load_metrics(folder)
        if final is not None and int(final.get("epoch", 0)) >= budget.epochs:
            tune.report(final, checkpoint=restored)
            return
    torch.manual_seed(budget.seed)  # the same ArchConfig and seed give the same initial weights
    model = build(arch)

    def report(metrics: dict[str, float], trained: Any) -> None:
        if int(metrics["epoch"]) < budget.epochs:
            tune.report(metrics)
            return
        with tempfile.TemporaryDirectory() as folder:
            save_checkpoint(folder, model=trained, arch=arch, input_shape=tuple(data.val_x.shape[1:]), metrics=metrics)
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(folder))

    run_trial(model=model, data=data, budget=budget, report=report)
