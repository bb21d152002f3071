"""Ray Tune wiring: the trainable, the Optuna searcher (multi-objective) and ASHA early stopping.

Optuna (https://optuna.org) proposes architectures; ASHA (https://arxiv.org/abs/1810.05934) stops weak trials at
rungs of ``val_acc``. Only trials that ran their full epoch budget reach Optuna as COMPLETE: a trial ASHA stopped is
told as PRUNED, so the sampler never mistakes a partial accuracy for a final one.
"""

from __future__ import annotations

import math
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
from trials import ProbeConfig, TensorData, TrainConfig, TrialResult, run_trial
from trials.constraints import Constraints

SAMPLERS: dict[str, Callable[..., optuna.samplers.BaseSampler]] = {
    # Tree-structured Parzen estimator; handles the conditional knobs natively (https://arxiv.org/abs/2304.11127).
    "tpe": lambda *, seed, trials: optuna.samplers.TPESampler(seed=seed, n_startup_trials=min(10, max(2, trials // 3))),
    # NSGA-II (https://doi.org/10.1109/4235.996017); two generations at least within the trial budget.
    "nsga2": lambda *, seed, trials: optuna.samplers.NSGAIISampler(seed=seed, population_size=max(4, min(50, trials // 2))),
    "random": lambda *, seed, trials: optuna.samplers.RandomSampler(seed=seed),
}


def trial_outcome(result: Mapping[str, Any], *, full_epochs: int) -> str:
    """How a trial that ended without an error ended, from its last result: ``rejected`` (over a hard budget,
    never trained), ``early_stopped`` (by ASHA, before ``full_epochs``) or ``completed``."""
    if result.get("rejected"):
        return "rejected"
    return "completed" if int(result.get("epoch", 0)) >= full_epochs else "early_stopped"


PROBE_PREFIX = "probe."  # result keys carrying trials.device_info (device name, torch version, threads, ...)


class FullBudgetOptunaSearch(OptunaSearch):
    """OptunaSearch that tells Optuna what really happened to each trial.

    - full budget: COMPLETE with (val_acc, latency_ms);
    - stopped early by ASHA: PRUNED, never COMPLETE with a partial accuracy;
    - raised (including NaN loss, OOM): FAIL (Ray's multi-objective path would try to tell it COMPLETE);
    - rejected by a hard budget before training: COMPLETE with val_acc 0 and its measured latency, and a
      positive constraint violation, which makes it infeasible: the samplers rank it below every feasible trial.
    With ``constraints`` active, every probed trial carries its violations (``Trial.set_constraint``), which TPE and
    NSGA-II read to rank feasibility (https://optuna.readthedocs.io/en/stable/faq.html#how-can-i-optimize-a-model-with-some-constraints).
    """

    def __init__(self, *, full_epochs: int, constraints: Constraints = Constraints(), **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.full_epochs = full_epochs
        self.constraints = constraints

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        if trial_id not in self._ot_trials or trial_id in self._completed_trials:
            return super().on_trial_complete(trial_id, result=result, error=error)  # Ray's warning path
        ot_trial, result = self._ot_trials[trial_id], result or {}
        if self.constraints.active and not error and "latency_ms" in result:
            for key, violation in self.constraints.violations(result).items():
                ot_trial.set_constraint(key, violation)
        outcome = "failed" if error or not result else trial_outcome(result, full_epochs=self.full_epochs)
        if outcome == "failed":
            self._ot_study.tell(ot_trial, state=optuna.trial.TrialState.FAIL)
        elif outcome == "rejected":
            self._ot_study.tell(ot_trial, [0.0, float(result["latency_ms"])])  # OBJECTIVES order; never trained
        elif outcome == "early_stopped":
            self._ot_study.tell(ot_trial, state=optuna.trial.TrialState.PRUNED)
        else:
            self._ot_study.tell(ot_trial, [float(result[m]) for m in OBJECTIVES])
        self._completed_trials.add(trial_id)


@dataclass(frozen=True)
class _DefineByRun:
    """Optuna define-by-run function (a picklable object: Ray saves the searcher with the experiment)."""

    space: SearchSpace
    arch_fields: dict[str, Any]

    def __call__(self, trial: Any) -> dict[str, Any]:
        number = getattr(getattr(trial, "ot_trial", trial), "number", None)  # Ray wraps the optuna.Trial
        return {"arch": self.space.to_arch(self.space.suggest(trial), **self.arch_fields), "optuna_trial": number}


def make_searcher(*, space: SearchSpace, sampler: str, seed: int, trials: int, full_epochs: int,
                  arch_fields: Mapping[str, Any], constraints: Constraints = Constraints()) -> FullBudgetOptunaSearch:
    """The searcher: ``space.suggest`` as Optuna's define-by-run function; the ArchConfig rides along as ``arch``."""
    return FullBudgetOptunaSearch(
        full_epochs=full_epochs,
        constraints=constraints,
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


def _raise(model: torch.nn.Module, at: str) -> None:
    raise RuntimeError(f"injected failure ({at})")


def _out_of_memory(model: torch.nn.Module, at: str) -> None:
    # What a CUDA OOM raises; simulated, since a CPU machine cannot run out of GPU memory on purpose.
    raise torch.OutOfMemoryError(f"CUDA out of memory (injected, {at}). Tried to allocate 2.00 GiB")


def _poison(model: torch.nn.Module, at: str) -> None:
    with torch.no_grad():  # a NaN weight makes the real training loop see a NaN loss and raise TrialDiverged
        next(p for p in model.parameters() if p.dim() > 1).fill_(float("nan"))


# Failure kinds for ``faults.kind`` (testing the failure handling): how an injected trial fails.
FAULTS: dict[str, Callable[[torch.nn.Module, str], None]] = {"raise": _raise, "oom": _out_of_memory, "nan": _poison}


@dataclass(frozen=True)
class FaultInjection:
    """Make a fraction of trials fail on purpose, to check that a search survives it (off by default).

    Trial ``n`` (Optuna's trial number) fails iff ``floor((n + 1) * rate) > floor(n * rate)``, so exactly
    ``rate`` of the trials fail, evenly spread (rate 0.2: trials 4, 9, 14, ...). ``kind`` is a name in
    :data:`FAULTS` or ``mixed`` (the failing trials cycle through oom, nan, raise).
    """

    rate: float = 0.0
    kind: str = "mixed"

    def __post_init__(self) -> None:
        if not 0.0 <= self.rate <= 1.0:
            raise ValueError(f"faults.rate={self.rate} must be between 0 and 1")
        if self.kind not in (*FAULTS, "mixed"):
            raise ValueError(f"unknown faults.kind {self.kind!r}; valid kinds: {', '.join((*FAULTS, 'mixed'))}")

    def pick(self, number: int | None) -> str | None:
        """The failure kind trial ``number`` gets, or None."""
        if number is None or self.rate <= 0 or math.floor((number + 1) * self.rate) <= math.floor(number * self.rate):
            return None
        if self.kind != "mixed":
            return self.kind
        return ("oom", "nan", "raise")[(math.floor((number + 1) * self.rate) - 1) % 3]


def plain_backbone(arch: Mapping[str, Any]) -> dict[str, Any]:
    """The ArchConfig's backbone without any attention and with the default head: the latency reference."""
    return {**arch, "head": "avg", "stages": [{"attn": "none"} for _ in arch["stages"]]}


@dataclass(frozen=True)
class TrialSettings:
    """What every trial of a search gets besides its architecture and the data: ``run_trial``'s settings."""

    train: TrainConfig
    probe: ProbeConfig
    constraints: Constraints  # hard budgets, checked after the probe
    device: str  # "cpu" | "cuda" | "auto"
    threads: int | None  # torch intra-op threads per trial; None = leave as is


def train_architecture(config: dict[str, Any], *, data: TensorData, budget: TrialSettings,
                       faults: FaultInjection = FaultInjection(), latency_reference: bool = False) -> None:
    """Ray trainable: build ``config["arch"]``, run the plain trial, report every epoch to Tune.

    The final epoch's report carries a checkpoint (weights + reference input/output + arch + metrics) that the
    MLflow callback uploads and ``search.export`` rebuilds from. With ``latency_reference`` the plain backbone
    (:func:`plain_backbone`) is timed interleaved with the model, which adds ``latency_rel``. When Ray restores a trial that already reached
    that checkpoint (the driver was killed before it recorded the trial as finished), the trial is not trained
    again: its saved final metrics are reported once more with the same checkpoint.
    """
    arch = config["arch"]
    if (restored := tune.get_checkpoint()) is not None:
        with restored.as_directory() as folder:
            final = load_metrics(folder)
        if final is not None and int(final.get("epoch", 0)) >= budget.train.epochs:
            tune.report(final, checkpoint=restored)
            return
    torch.manual_seed(budget.train.seed)  # the same ArchConfig and seed give the same initial weights
    model = build(arch)
    fault = faults.pick(config.get("optuna_trial"))
    if fault == "nan":
        FAULTS[fault](model, "before training")

    def report(result: TrialResult, trained: Any) -> None:
        if fault in ("raise", "oom"):
            FAULTS[fault](trained, f"after epoch {int(result.metrics['epoch'])}")
        # what the latency was measured on rides along in every report; the MLflow callback logs it as params
        metrics = {**result.metrics, **{f"{PROBE_PREFIX}{k}": v for k, v in result.device_info.items()}}
        if int(metrics["epoch"]) < budget.train.epochs:
            tune.report(metrics)
            return
        with tempfile.TemporaryDirectory() as folder:
            save_checkpoint(folder, model=trained, arch=arch, input_shape=tuple(data.val_x.shape[1:]), metrics=metrics)
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(folder))

    reference = build(plain_backbone(arch)) if latency_reference else None
    run_trial(model=model, data=data, train=budget.train, probe=budget.probe, constraints=budget.constraints,
              device=budget.device, threads=budget.threads, report=report, reference=reference)
