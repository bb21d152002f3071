"""Early stopping, one rung unit per epoch; controls run their full budget. Two rules (``asha.rank=``):

- ``val_acc``: ASHA (Li et al. 2018, https://arxiv.org/abs/1810.05934), Ray's ``ASHAScheduler`` on ``val_acc``.
- ``pareto``: multi-objective ASHA (MO-ASHA, Schmucker et al. 2021, https://arxiv.org/abs/2106.12639): at each rung
  a trial continues when it is on the non-dominated front of (val_acc at the rung ↑, latency_norm_ms ↓) among the
  trials recorded there, or ranks in their top ``1/reduction_factor`` by non-dominated sorting, so a fast
  architecture of modest accuracy, which belongs on the front, is not stopped for its accuracy alone. Within one
  non-dominated front the NSGA-II crowding distance decides (Deb et al. 2002: the two ends of the front first, then
  the most isolated points), one of the two selections MO-ASHA's paper offers (the other is an ε-net). The order and
  the rule are pure (:mod:`search.pareto`); this module is their Ray adapter. Latency is known before any training
  (the trial's probe), so it is exact at every rung.

Both use the same rungs (Ray's milestones: grace · rf^k below the full budget) and the same asynchronous rule: a
trial arriving at a rung is compared with the trials recorded there before it, and the first one always continues.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, TrialScheduler

from search.outcomes import ASHA_RANKS, LATENCY_OBJECTIVE, VAL_ACC
from search.pareto import pareto_keeps
from search.settings.plan import AshaPlan

TIME_ATTR = "training_iteration"  # one unit per epoch: each trial reports once per epoch


def rung_milestones(*, grace_period: int, reduction_factor: float, full_epochs: int) -> list[int]:
    """Epochs at which a decision is taken, ascending (Ray's ASHA milestones below the full budget)."""
    grace = min(grace_period, full_epochs)
    count = int(math.log(full_epochs / grace) / math.log(reduction_factor) + 1)
    return sorted(m for m in {int(grace * reduction_factor ** k) for k in range(count)} if m < full_epochs)


class ControlsRunFullASHA(ASHAScheduler):
    """ASHA that never stops a control (a trial whose config names one) before its full budget.

    A control's results still enter the rungs, so they raise the bar for searched trials as any other trial's do.
    """

    TIME_ATTR = TIME_ATTR

    def __init__(self, *, full_epochs: int, **kwargs: Any) -> None:
        super().__init__(time_attr=self.TIME_ATTR, max_t=full_epochs, **kwargs)
        self.full_epochs = full_epochs

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
        decision = super().on_trial_result(tune_controller, trial, result)
        if (decision == TrialScheduler.STOP and trial.config.get("control")
                and result.get(self.TIME_ATTR, 0) < self.full_epochs):
            return TrialScheduler.CONTINUE
        return decision


class ParetoASHA(FIFOScheduler):
    """MO-ASHA on (val_acc ↑, the ranked latency ↓: latency_norm_ms, or latency_target_ms with a table) through Ray Tune's public ``TrialScheduler`` API; controls enter
    the rungs but are never stopped. A result without val_acc (a trial rejected by constraints) is left alone."""

    def __init__(self, *, full_epochs: int, grace_period: int, reduction_factor: float,
                 metric: str = VAL_ACC, latency: str = LATENCY_OBJECTIVE) -> None:
        super().__init__()
        self.full_epochs, self.reduction_factor = full_epochs, reduction_factor
        self._accuracy, self.latency = metric, latency
        self.milestones = rung_milestones(grace_period=grace_period, reduction_factor=reduction_factor,
                                          full_epochs=full_epochs)
        self.recorded: dict[int, dict[str, tuple[float, float]]] = {m: {} for m in self.milestones}
        self._latency: dict[str, float] = {}  # trial id -> its probe's latency (reported with every result)

    def set_search_properties(self, metric: str | None, mode: str | None, **spec: Any) -> bool:
        return True  # the objectives are fixed: val_acc up, latency down

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
        if self.latency in result:
            self._latency[trial.trial_id] = float(result[self.latency])
        epoch = result.get(TIME_ATTR)
        if epoch not in self.recorded or self._accuracy not in result or trial.trial_id not in self._latency:
            return TrialScheduler.CONTINUE
        rung = self.recorded[epoch]
        point = (float(result[self._accuracy]), self._latency[trial.trial_id])
        keep = pareto_keeps(point, [p for t, p in rung.items() if t != trial.trial_id],
                            reduction_factor=self.reduction_factor)
        rung[trial.trial_id] = point
        return TrialScheduler.CONTINUE if keep or trial.config.get("control") else TrialScheduler.STOP

    def debug_string(self) -> str:
        return "ParetoASHA: " + ", ".join(f"rung {m}: {len(r)}" for m, r in self.recorded.items())


def _asha(*, full_epochs: int, grace_period: int, reduction_factor: float, metric: str = VAL_ACC,
          latency: str = LATENCY_OBJECTIVE) -> TrialScheduler:
    return ControlsRunFullASHA(full_epochs=full_epochs, metric=metric, mode="max",
                               grace_period=min(grace_period, full_epochs), reduction_factor=reduction_factor)


def _pareto(*, full_epochs: int, grace_period: int, reduction_factor: float, metric: str = VAL_ACC,
            latency: str = LATENCY_OBJECTIVE) -> TrialScheduler:
    return ParetoASHA(full_epochs=full_epochs, grace_period=grace_period, reduction_factor=reduction_factor,
                      metric=metric, latency=latency)


# asha.rank -> the scheduler it makes
SCHEDULERS: dict[str, Callable[..., TrialScheduler]] = {VAL_ACC: _asha, "pareto": _pareto}
assert tuple(SCHEDULERS) == ASHA_RANKS, "search.outcomes.ASHA_RANKS lists the schedulers for the settings"


def make_scheduler(*, asha: AshaPlan, full_epochs: int, metric: str = VAL_ACC,
                   latency: str = LATENCY_OBJECTIVE) -> TrialScheduler:
    """The early-stopping scheduler ``asha.rank`` names (``SCHEDULERS``), one rung unit per epoch; controls run in
    full. ``metric``: the search's score (plan.score.val: val_acc, val_miou); ``asha.rank=val_acc`` ranks on it
    alone, whatever the task; ``latency``: the latency the search ranks (plan.score.latency), which
    ``asha.rank=pareto`` ranks beside it."""
    return SCHEDULERS[asha.rank](full_epochs=full_epochs, grace_period=asha.grace_period,
                                 reduction_factor=asha.reduction_factor, metric=metric, latency=latency)
