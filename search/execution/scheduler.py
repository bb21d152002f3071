"""Early stopping: ASHA (Li et al. 2018, https://arxiv.org/abs/1810.05934) on ``val_acc``, one rung unit per epoch;
controls run their full budget."""

from __future__ import annotations

from typing import Any

from ray.tune.schedulers import ASHAScheduler, TrialScheduler


class ControlsRunFullASHA(ASHAScheduler):
    """ASHA that never stops a control (a trial whose config names one) before its full budget.

    A control's results still enter the rungs, so they raise the bar for searched trials as any other trial's do.
    """

    TIME_ATTR = "training_iteration"  # one unit per epoch: each trial reports once per epoch

    def __init__(self, *, full_epochs: int, **kwargs: Any) -> None:
        super().__init__(time_attr=self.TIME_ATTR, max_t=full_epochs, **kwargs)
        self.full_epochs = full_epochs

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
        decision = super().on_trial_result(tune_controller, trial, result)
        if (decision == TrialScheduler.STOP and trial.config.get("control")
                and result.get(self.TIME_ATTR, 0) < self.full_epochs):
            return TrialScheduler.CONTINUE
        return decision


def make_scheduler(*, full_epochs: int, grace_period: int, reduction_factor: float) -> ASHAScheduler:
    """ASHA on ``val_acc``, one rung unit per epoch (each trial reports once per epoch); controls run in full."""
    return ControlsRunFullASHA(
        full_epochs=full_epochs,
        metric="val_acc",
        mode="max",
        grace_period=min(grace_period, full_epochs),
        reduction_factor=reduction_factor,
    )
