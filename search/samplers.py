"""The Optuna samplers a search can use (``sampler=NAME``), each multi-objective and seeded. No Ray import here.

A registry below the settings (``search.settings.config`` lists its names as the ``sampler`` choices) and the study
(``search.study.searcher`` makes the sampler a search names)."""

from __future__ import annotations

import warnings
from collections.abc import Callable

import optuna


def tpe_startup_trials(trials: int) -> int:
    """Random proposals TPE makes before it models (both TPE samplers): a third of the budget, at least 2 and at
    most Optuna's default 10, so a small budget keeps two thirds of its trials for TPE's model."""
    return min(10, max(2, trials // 3))


def _tpe_mv(*, seed: int, trials: int) -> optuna.samplers.BaseSampler:
    with warnings.catch_warnings():  # multivariate / group / constant_liar are chosen on purpose: no "experimental"
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=tpe_startup_trials(trials), multivariate=True,
                                          group=True, constant_liar=True)


SAMPLERS: dict[str, Callable[..., optuna.samplers.BaseSampler]] = {
    # Tree-structured Parzen estimator; handles the conditional knobs natively (https://arxiv.org/abs/2304.11127).
    "tpe": lambda *, seed, trials: optuna.samplers.TPESampler(seed=seed, n_startup_trials=tpe_startup_trials(trials)),
    # NSGA-II (https://doi.org/10.1109/4235.996017); two generations at least within the trial budget.
    "nsga2": lambda *, seed, trials: optuna.samplers.NSGAIISampler(seed=seed, population_size=max(4, min(50, trials // 2))),
    # TPE as Optuna recommends for conditional spaces and parallel proposals: a joint density over the knobs drawn
    # together (multivariate, group: one group per set of parameters that appear together) and "constant liar" for
    # trials still running, so concurrent proposals do not pile up on one point (optuna.samplers.TPESampler docs).
    "tpe_mv": lambda *, seed, trials: _tpe_mv(seed=seed, trials=trials),
    "random": lambda *, seed, trials: optuna.samplers.RandomSampler(seed=seed),
}
