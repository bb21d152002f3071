"""The Optuna samplers a search can use (``sampler=NAME``), each multi-objective and seeded. No Ray import here."""

from __future__ import annotations

from collections.abc import Callable

import optuna

SAMPLERS: dict[str, Callable[..., optuna.samplers.BaseSampler]] = {
    # Tree-structured Parzen estimator; handles the conditional knobs natively (https://arxiv.org/abs/2304.11127).
    "tpe": lambda *, seed, trials: optuna.samplers.TPESampler(seed=seed, n_startup_trials=min(10, max(2, trials // 3))),
    # NSGA-II (https://doi.org/10.1109/4235.996017); two generations at least within the trial budget.
    "nsga2": lambda *, seed, trials: optuna.samplers.NSGAIISampler(seed=seed, population_size=max(4, min(50, trials // 2))),
    "random": lambda *, seed, trials: optuna.samplers.RandomSampler(seed=seed),
}
