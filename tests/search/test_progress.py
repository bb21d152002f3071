"""The per-trial terminal lines: every outcome a trial can end with has a line (a trial that ends without a usable
report used to raise KeyError in the printer), and the confirmation's lines leave out a latency they do not report."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from search.execution.progress import ProgressPrinter
from search.outcomes import Outcome, trial_outcome

LAST_RESULTS = {  # a trial's last report -> the outcome trial_outcome gives it
    Outcome.FAILED: None,  # ended without a usable report
    Outcome.REJECTED: {"rejected": 1.0, "latency_ms": 3.0, "epoch": 0},
    Outcome.EARLY_STOPPED: {"epoch": 1, "val_acc": 0.5},
    Outcome.COMPLETED: {"epoch": 3, "val_acc": 0.7},
}


def _trial(last_result: dict | None) -> SimpleNamespace:
    return SimpleNamespace(trial_id="abc123", last_result=last_result, config={})


@pytest.mark.parametrize("outcome", list(LAST_RESULTS))
def test_every_outcome_prints_one_line(outcome: Outcome, capsys: pytest.CaptureFixture[str]) -> None:
    assert trial_outcome(LAST_RESULTS[outcome], full_epochs=3) is outcome
    printer = ProgressPrinter(total_trials=2, full_epochs=3)
    printer.on_trial_complete(0, [], _trial(LAST_RESULTS[outcome]))
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1 and "abc123" in lines[0] and "(1/2 finished)" in lines[0]
    if outcome is Outcome.FAILED:
        assert "failed" in lines[0]


@pytest.mark.parametrize("show", [True, False])
def test_epoch_lines_show_latency_only_when_asked(show: bool, capsys: pytest.CaptureFixture[str]) -> None:
    printer = ProgressPrinter(total_trials=1, full_epochs=3, latency="latency_norm_ms" if show else None)
    printer.on_trial_result(0, [], _trial(None), {"epoch": 1, "val_acc": 0.5, "latency_norm_ms": 2.0,
                                                   "train_loss": 1.0})
    assert ("latency_norm_ms=2.00" in capsys.readouterr().out) is show


def test_trials_restarted_after_a_crash_keep_distinct_numbers(capsys: pytest.CaptureFixture[str]) -> None:
    printer = ProgressPrinter(total_trials=4, full_epochs=3, seen=["a1", "b2"])
    arch = {"backbone": "resnet10t", "in_chans": 1, "num_classes": 2, "stages": [{"attn": "none"}] * 4}
    for trial_id in ("a1", "b2", "c3"):
        printer.on_trial_start(0, [], SimpleNamespace(trial_id=trial_id, config={"arch": arch}))
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split("trial ", 1)[1].split()[:3] for line in lines] == [["1/4", "a1", "restarts"], ["2/4", "b2", "restarts"],
                                                     ["3/4", "c3", "start"]]
