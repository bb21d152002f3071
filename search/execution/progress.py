"""What a person sees in the terminal while trials run: one line per trial event (a Ray Tune callback), no Ray tables."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from ray.tune import Callback

from backbones import ArchConfig

from search.execution.signals import raise_if_stopped
from search.log import say
from search.outcomes import EPOCH, LATENCY_OBJECTIVE, REJECTED, TRAIN_LOSS, VAL_ACC, Outcome, trial_outcome
from trials import Constraints


class ProgressPrinter(Callback):
    """Prints trial starts, every epoch's score (val_acc; val_miou and val_pixel_acc for segmentation), early stops
    and failures, with elapsed time."""

    def __init__(self, *, total_trials: int, full_epochs: int, seen: Iterable[str] = (),
                 ended: Iterable[str] = (), constraints: Constraints = Constraints(),
                 metrics: Sequence[str] = (VAL_ACC,), latency: str | None = LATENCY_OBJECTIVE) -> None:
        """``seen`` / ``ended``: trial ids started / finished before a crash, when resuming. ``latency``: the latency
        the search ranks (``plan.score.latency``), shown on each epoch line; None: the epoch lines leave it out (the
        confirmation's trials probe once, not exclusively; their latency is measured alone afterwards, and that is the
        figure reported). ``metrics``: the validation metrics each epoch line shows, the score first
        (``plan.score``)."""
        self.constraints = constraints
        self.metrics = tuple(metrics)
        self.latency = latency
        self.total = total_trials
        self.full_epochs = full_epochs
        self.numbers = {trial_id: i + 1 for i, trial_id in enumerate(dict.fromkeys(seen))}  # "trial K/N" per id
        self.ended_ids = set(ended)
        self.ended_before = set(ended)  # finished before a crash: only re-reported from their final checkpoint

    @property
    def started(self) -> int:
        return len(self.numbers)

    @property
    def ended(self) -> int:
        return len(self.ended_ids)

    def _say(self, text: str) -> None:
        say(text)

    def on_step(self, iteration: int, trials: list, **info: Any) -> None:
        raise_if_stopped()  # a Ctrl-C or SIGTERM whose first raise Python dropped (search.execution.signals)

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        if trial.trial_id in self.ended_before:
            self._say(f"  {trial.trial_id} had finished before the crash: re-reporting its final checkpoint")
            return
        again = trial.trial_id in self.numbers
        number = self.numbers.setdefault(trial.trial_id, len(self.numbers) + 1)  # a restart keeps its number
        what = "restarts after the crash" if again else "start"
        if trial.config.get("label"):
            what += f" ({trial.config['label']})"
        self._say(f"trial {number}/{self.total} {trial.trial_id} {what}  {ArchConfig.from_dict(trial.config['arch'])}")

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        if trial.trial_id in self.ended_before or result.get(REJECTED):
            return
        latency = f"  {self.latency}={result.get(self.latency, float('nan')):.2f}" if self.latency else ""
        self._say(f"  {trial.trial_id} epoch {int(result[EPOCH])}/{self.full_epochs}  "
                  + "  ".join(f"{m}={result[m]:.4f}" for m in self.metrics if m in result)
                  + f"{latency}  train_loss={result.get(TRAIN_LOSS, float('nan')):.3f}")

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        if trial.trial_id in self.ended_before:
            return
        self.ended_ids.add(trial.trial_id)
        last = trial.last_result or {}
        how = {Outcome.COMPLETED: "done",
               Outcome.EARLY_STOPPED: f"stopped early by ASHA after epoch {int(last.get(EPOCH, 0))}",
               Outcome.REJECTED: f"rejected before training: {self.constraints.reason(last)}",
               Outcome.FAILED: "ended without a usable report (failed)",
               Outcome.INTERRUPTED: "interrupted",
               }[trial_outcome(last, full_epochs=self.full_epochs)]
        self._say(f"  {trial.trial_id} {how} ({self.ended}/{self.total} finished)")

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.ended_ids.add(trial.trial_id)
        trace = Path(getattr(trial, "path", None) or ".") / "error.txt"
        self._say(f"  {trial.trial_id} FAILED: {trial_error_line(trial)} ({self.ended}/{self.total}; "
                  f"traceback: {_relative(trace)})")


def trial_error_line(trial: Any) -> str:
    """The last line of a failed Ray trial's error (usually ``SomeError: message``)."""
    error = trial.get_error() if hasattr(trial, "get_error") else None
    local = Path(getattr(trial, "error_file", None) or "/nonexistent")
    if not error and local.is_file():  # Ray writes the trace locally before it syncs it to storage
        error = local.read_text(errors="replace")
    lines = [line for line in str(error or "").strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else "trial raised an error"



class QuietTrialFailures(logging.Filter):
    """Keeps Ray's per-trial failure tracebacks off the terminal (:func:`quiet_trial_failures`)."""

    PREFIXES = ("Trial task failed for trial", "Trials did not complete", "Failed to fetch metrics for")

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.PREFIXES)


# The Ray loggers that report a failed trial: tune_controller (the traceback), tune (the list of failed trials at the
# end) and experiment_analysis (failed trials have no result to read).
_RAY_TRIAL_LOGGERS = ("ray.tune.execution.tune_controller", "ray.tune.tune", "ray.tune.analysis.experiment_analysis")


def quiet_trial_failures() -> None:
    """Drop Ray's own messages about failed trials: the progress line already names the trial and its error,
    MLflow keeps the reason (tag ``attnas.error``) and the whole traceback stays in ``runs/NAME/TRIAL/error.txt``.
    Every other Ray warning and error still reaches the terminal."""
    for name in _RAY_TRIAL_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, QuietTrialFailures) for f in logger.filters):
            logger.addFilter(QuietTrialFailures())


def _relative(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def quiet_libraries() -> None:
    """Only warnings from Optuna and MLflow, and none of Ray's own failed-trial messages
    (:func:`quiet_trial_failures`): the search's own lines say what happens."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # a tqdm bar per artifact read back
    quiet_trial_failures()
