"""The checked plan of a search: plain typed data, grouped as :class:`~search.settings.config.RunConfig` is
(``plan.budget``, ``plan.asha``, ``plan.confirm``, ...), each phase reading its own group.

:func:`search.plan_check.prepare` makes it from a composed config; the MLflow params it is recorded as are written in
one place (:func:`search.tracking.plan_params.parent_params`). Nothing here imports Ray, MLflow or the phases.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from backbones import ArchConfig
from devices import LatencyPredictor
from search.outcomes import ACCURACY, Score
from spaces import Budget, SearchSpace
from trials import Constraints, ProbeConfig, TensorData, TrainConfig

AUTO = "auto"  # train.precision=auto: chosen by a timing at search start (search.execution.calibration)

# confirm.controls values: every control of the space, or the plain backbone only (the verdict's reference)
CONFIRM_CONTROLS = ("all", "plain")

# faults.kind values (testing only): search.execution.faults.FAULTS injects each; "mixed" cycles through them
FAULT_KINDS = ("raise", "oom", "nan")
MIXED = "mixed"


@dataclass(frozen=True)
class TrialSettings:
    """What every trial of a search gets besides its architecture and the data: ``run_trial``'s settings."""

    train: TrainConfig
    probe: ProbeConfig
    constraints: Constraints  # hard budgets, checked after the probe (their one home in the plan)
    device: str  # "cpu" | "cuda" | "auto"
    threads: int | None  # torch intra-op threads per trial; None = leave as is
    # the plain backbone's batch-1 latency (ms) measured alone at search start: latency_norm_ms = latency_rel x this
    reference_latency_ms: float | None = None
    # the exclusive probe slot's lock file (trials.ProbeSlot), in the node's temp folder
    # (search.execution.storage.probe_lock_path): while a trial times its latency no other trial of the search on
    # that node computes; None = no slot
    probe_lock: Path | None = None
    # latency.table's predictor (devices.load_predictor): each trial reports latency_target_ms, predicted for the
    # table's device, which the search then ranks (plan.score.latency); None = rank latency measured here
    latency_predictor: LatencyPredictor | None = None


@dataclass(frozen=True)
class CalibrationPlan:
    """What the driver measures on this host before any trial trains (search.execution.calibration)."""

    train_precision: str  # train.precision: "auto" (timed at search start) or the precision given
    latency_reference: bool  # latency.reference: time the plain backbone alone, and interleaved with each trial


@dataclass(frozen=True)
class ExecutionPlan:
    """Where and how many trials run (search.execution)."""

    concurrency: int  # trials at once
    storage: str  # Ray Tune storage: an absolute folder path or a URI (s3://...; search.execution.storage)
    ray_address: str | None = None  # HOST:PORT of the Ray cluster to join (checked reachable); None: a local Ray
    concurrency_given: bool = False  # concurrency= was set (else on a cluster it is recounted over the nodes)


@dataclass(frozen=True)
class StudyPlan:
    """The Optuna study (search.study)."""

    sampler: str  # search.samplers.SAMPLERS
    storage: str  # Optuna RDB storage URL of the search's study (named like the search)


@dataclass(frozen=True)
class AshaPlan:
    """Early stopping (search.execution.scheduler)."""

    grace_period: int  # epochs
    reduction_factor: float
    rank: str  # "val_acc" | "pareto" (search.execution.scheduler.SCHEDULERS)


@dataclass(frozen=True)
class OneshotPlan:
    """strategy=oneshot's supernet pre-screen (search.study.prescreen)."""

    epochs: int | None  # supernet training epochs; None: twice the budget's epochs
    sample: int  # architectures scored with inherited weights
    recal_batches: int  # BatchNorm re-estimation batches per path


@dataclass(frozen=True)
class ConfirmPlan:
    """The confirmation phase (search.confirm); ``top_k`` 0: the phase is off."""

    top_k: int  # front architectures retrained besides the controls
    seeds: int  # seeds of the first look
    max_seeds: int  # the seed cap
    resolution: float  # the half-width (accuracy fraction) at which it stops adding seeds
    controls: str  # CONFIRM_CONTROLS: every control retrained beside the picks, or the plain backbone only
    epochs: int  # epochs of each run (budget.confirm_epochs; at least budget.epochs)
    # what it trains on (budget.confirm_train_size images; the search's own data when that is the search's size)
    # with the test split it scores on; None when confirm.enabled=false
    data: TensorData | None


@dataclass(frozen=True)
class MlflowPlan:
    """Where the search is recorded (search.tracking)."""

    tracking_uri: str
    experiment: str


@dataclass(frozen=True)
class FaultInjection:
    """TESTING ONLY (``faults.*``): make a fraction of trials fail on purpose (search.execution.faults).

    Trial ``n`` (Optuna's trial number) fails iff ``floor((n + 1) * rate) > floor(n * rate)``, so exactly ``rate``
    of the trials fail, evenly spread (rate 0.2: trials 4, 9, 14, ...). ``kind`` is one of :data:`FAULT_KINDS` or
    ``mixed`` (the failing trials cycle through oom, nan, raise); the config checks both.
    """

    rate: float = 0.0
    kind: str = MIXED


@dataclass(frozen=True)
class SearchPlan:
    """Everything a search needs, validated."""

    name: str
    space: SearchSpace
    hardware: str  # "cpu" or "cuda": which budget is used and where trials run
    seed: int  # sampler and training seed
    strategy: str  # "multi_trial" or "oneshot": a supernet pre-screen proposes the trials (search.study.prescreen)
    data: TensorData  # what the search trains and validates on; never the test split
    data_root: str  # data.root as an absolute path ("" when not set: the dataset's default folders)
    budget: Budget
    trial_settings: TrialSettings  # what run_trial gets: training, probe, constraints, device, threads
    calibration: CalibrationPlan
    execution: ExecutionPlan
    study: StudyPlan
    asha: AshaPlan
    oneshot: OneshotPlan  # read with strategy=oneshot
    confirm: ConfirmPlan
    mlflow: MlflowPlan
    faults: FaultInjection  # testing only; off by default
    # what trials are ranked and confirmed by: the space's task's metric (trials.TRIAL_TASKS[task].metric), with its
    # test metric and its word for points (search.outcomes.SCORES); val_acc/test_acc for classification
    score: Score = ACCURACY

    @property
    def base_arch(self) -> ArchConfig:
        """The plain architecture of the search (its backbone, sizes, no attention): what the sampler fills."""
        return self.space.base_arch(backbone=self.budget.backbone, in_chans=self.data.in_chans,
                                    num_classes=self.data.num_classes, backbone_kwargs=self.budget.backbone_kwargs)

    @property
    def per_trial(self) -> dict[str, float]:
        """The Ray resources one trial takes (GPUs only with the GPU budget)."""
        return {"cpu": self.budget.cpu_per_trial, "gpu": self.budget.gpu_per_trial if self.hardware == "cuda" else 0}
