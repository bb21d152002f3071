"""Turn the Hydra config into a checked :class:`~search.settings.plan.SearchPlan` before anything is written or Ray
starts: the settings, the space and budget, the tracking store, the dataset, the backbone and the Ray cluster's
address. Above the execution layer, whose cluster and storage rules it asks; imports no Ray itself
(``tests/test_layers.py`` checks it)."""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
from omegaconf import DictConfig

from backbones import MODEL_TASKS, ArchConfig, build
from backbones.task import CLASSIFY
from devices import LatencyPredictor, TableError, load_predictor
from search.execution.cluster import Node, reachable_address, trial_slots
from search.execution.ray_adapter import find_cluster_address
from search.execution.storage import is_uri, probe_lock_path, resolve as resolve_storage
from search.settings.config import Device, RunConfig, check_setting, run_settings
from search.settings.errors import UserError
from search.settings.plan import (AUTO, AshaPlan, CalibrationPlan, ConfirmPlan, ExecutionPlan, FaultInjection,
                                  MlflowPlan, OneshotPlan, SearchPlan, StudyPlan, TrialSettings)
from search.log import say
from search.settings.database_url import check_storage, redact
from search.settings.tracking_uri import check_tracking_uri, sqlite_path
from spaces import Budget, SearchSpace, SpaceError, check_space_fits, load_space
from search.outcomes import LATENCY_TARGET, SCORES
from trials import TRIAL_TASKS, Constraints, DatasetMissingError, ProbeConfig, TrainConfig, resolve_device


@dataclass(frozen=True)
class ConfirmDefaults:
    """The confirmation phase's defaults on one kind of hardware (when confirm.* are not given)."""

    top_k: int  # front architectures confirmed besides the controls
    seeds: int  # seeds before the first look: 3 is the fewest that gives a paired interval a chance (t(0.975, 2) = 4.30)
    max_seeds: int  # the seed cap
    resolution: float  # the half-width asked of every interval of the difference to plain (accuracy fraction)
    controls: str  # which controls are retrained beside the picks (search.settings.plan.CONFIRM_CONTROLS)


# On CPU the pick against the plain backbone only, on 3 seeds with one look (6 runs): the confirmation would otherwise
# be most of the first run's time on 2 cores, and at the CPU budget's seed spread even 10 seeds rarely reach the
# asked +-1 point, so more seeds buy little (BENCHMARKS.md sections 11 and 16); the verdict states the resolution
# reached and points to the GPU budget. On GPU the runs are cheap enough for 3 candidates, every control, 10 seeds.
CONFIRM_DEFAULTS: dict[str, ConfirmDefaults] = {
    "cuda": ConfirmDefaults(top_k=3, seeds=3, max_seeds=10, resolution=0.005, controls="all"),
    "cpu": ConfirmDefaults(top_k=1, seeds=3, max_seeds=3, resolution=0.01, controls="plain"),
}


def prepare(cfg: DictConfig | RunConfig) -> SearchPlan:
    """Validate ``cfg`` (settings, space, budget overrides, tracking store, dataset, backbone). Writes nothing."""
    settings = run_settings(cfg)  # typed; types, choices and ranges checked (search.settings.config)
    if settings.device is Device.cuda and not torch.cuda.is_available():
        raise UserError("device=cuda but no CUDA device is visible; use device=auto or device=cpu")
    hardware = resolve_device(settings.device.value).type  # trials.resolve_device: auto means CUDA when present
    latency_setting = settings.latency
    if latency_setting.runtime.value == "onnxruntime" and (hardware != "cpu" or latency_setting.precision.value != "fp32"):
        raise UserError(f"latency.runtime=onnxruntime times fp32 models on the CPU; this search runs on {hardware} "
                        f"with latency.precision={latency_setting.precision.value} (use device=cpu "
                        f"latency.precision=fp32, or latency.runtime=torch)")
    try:
        space = load_space(settings.space)
        budget = space.budgets["gpu" if hardware == "cuda" else "cpu"].with_overrides(asdict(settings.budget))
    except SpaceError as exc:
        raise UserError(str(exc)) from None
    task = TRIAL_TASKS[space.task]  # what the space's models are trained for: its datasets, loader and metric
    if space.dataset not in task.datasets:
        raise UserError(f"space {space.name!r}: unknown dataset {space.dataset!r} for task {task.name!r}; valid "
                        f"datasets: {', '.join(task.datasets)}")
    load_dataset = task.load
    if settings.strategy.value == "oneshot" and not MODEL_TASKS[space.task].supernet:
        raise UserError(f"strategy=oneshot: the supernet covers classification only; space {space.name!r} has task "
                        f"{space.task!r} (use strategy=multi_trial)")
    name = settings.name or f"{space.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    check_setting(RunConfig, "name", name)  # the default name too (it comes from the space)
    check_tracking_uri(settings.mlflow.tracking_uri)
    if settings.study.storage and (reason := check_storage(settings.study.storage)):
        raise UserError(f"study.storage={redact(settings.study.storage)} cannot be reached ({reason}); check the host, "
                        f"port, user and password, or leave study.storage unset for a local optuna.db")
    confirm = CONFIRM_DEFAULTS[hardware]
    seeds = settings.confirm.seeds or confirm.seeds
    max_seeds = settings.confirm.max_seeds or max(seeds, confirm.max_seeds)
    if max_seeds < seeds:
        raise UserError(f"confirm.max_seeds={max_seeds} is below confirm.seeds={seeds}: the seed cap must be at "
                        f"least the seeds of the first look")
    ray_address = (reachable_address(settings.ray.address, find_auto=find_cluster_address)
                   if settings.ray.address else None)
    confirm_budget = budget.confirm
    # the val split is drawn before train_size is taken (trials.load_dataset), so on a dataset of fixed size (all but
    # `synthetic`, generated to the size asked) both loads hold out the same val images and the confirmation's train
    # images include the search's
    load = dict(root=settings.data.root, val_size=budget.val_size, seed=settings.seed, download=settings.data.download,
                test_size=settings.data.test_size, image_size=settings.data.image_size, cache=settings.data.cache,
                log=say)
    same_images = confirm_budget.train_size == budget.train_size
    try:  # with the test split when confirming, so that its errors (data.test_size, none there) name it
        data = load_dataset(space.dataset, train_size=budget.train_size, test=settings.confirm.enabled, **load)
    except (DatasetMissingError, ValueError) as exc:  # ValueError: sizes or data the dataset cannot supply
        raise UserError(str(exc)) from None
    confirm_data = data if settings.confirm.enabled else None
    if settings.confirm.enabled and not same_images:
        try:
            confirm_data = load_dataset(space.dataset, train_size=confirm_budget.train_size, test=True, **load)
        except ValueError as exc:  # the same data loaded once already: only the confirmation's size can be wrong
            raise UserError(f"budget.confirm_train_size={budget.confirm_train_size}: {exc}") from None
    data = replace(data, test_x=None, test_y=None)  # the search never sees the test split
    try:
        check_space_fits(space, backbone=budget.backbone, in_chans=data.in_chans,
                         backbone_kwargs=budget.backbone_kwargs)
    except SpaceError as exc:
        raise UserError(str(exc)) from None
    base = space.base_arch(backbone=budget.backbone, in_chans=data.in_chans, num_classes=data.num_classes,
                           backbone_kwargs=budget.backbone_kwargs)
    for control, arch in space.control_archs(base=base).items():  # a control the backbone cannot take: say so now
        try:
            build(arch)
        except ValueError as exc:
            raise UserError(f"space {space.name!r}: control {control!r} ({arch}) does not fit {budget.backbone}: "
                            f"{exc}") from None
    latency = settings.latency
    predictor = _latency_predictor(latency.table, space=space, base=base)
    score = SCORES[task.metric]
    storage = resolve_storage(settings.storage)
    return SearchPlan(
        name=name,
        space=space,
        hardware=hardware,
        seed=settings.seed,
        strategy=settings.strategy.value,
        data=data,
        data_root=str(Path(settings.data.root).expanduser().resolve()) if settings.data.root else "",
        budget=budget,
        trial_settings=TrialSettings(
            train=TrainConfig(epochs=budget.epochs, batch_size=budget.batch_size, lr=budget.lr,
                              weight_decay=budget.weight_decay, compile=settings.compile, seed=settings.seed,
                              ema=budget.ema, **_precision(settings.train.precision.value)),
            probe=ProbeConfig(runs=latency.runs, warmup=latency.warmup, batch=latency.batch,
                              precision=latency.precision.value, channels_last=latency.channels_last,
                              runtime=latency.runtime.value),
            constraints=Constraints(max_latency_ms=settings.constraints.max_latency_ms,
                                    max_params_m=settings.constraints.max_params_m),
            threads=budget.cpu_per_trial, device=hardware,
            probe_lock=probe_lock_path(storage, name=name),  # node-local; made by the first trial that takes it
            latency_predictor=predictor,
        ),
        calibration=CalibrationPlan(train_precision=settings.train.precision.value,
                                    latency_reference=latency.reference),
        execution=ExecutionPlan(concurrency=_concurrency(settings.concurrency, hardware=hardware, budget=budget),
                                storage=storage, ray_address=ray_address,
                                concurrency_given=settings.concurrency is not None),
        study=StudyPlan(sampler=settings.sampler.value, storage=study_storage_url(
            settings.mlflow.tracking_uri, storage=storage, given=settings.study.storage)),
        asha=AshaPlan(grace_period=settings.asha.grace_period, reduction_factor=settings.asha.reduction_factor,
                      rank=settings.asha.rank.value),
        oneshot=OneshotPlan(epochs=settings.oneshot.epochs, sample=settings.oneshot.sample,
                            recal_batches=settings.oneshot.recal_batches),
        confirm=ConfirmPlan(top_k=(settings.confirm.top_k or confirm.top_k) if settings.confirm.enabled else 0,
                            seeds=seeds, max_seeds=max_seeds,
                            resolution=settings.confirm.resolution or confirm.resolution,
                            controls=settings.confirm.controls.value if settings.confirm.controls else confirm.controls,
                            epochs=confirm_budget.epochs, data=confirm_data),
        mlflow=MlflowPlan(tracking_uri=settings.mlflow.tracking_uri, experiment=settings.mlflow.experiment),
        faults=FaultInjection(rate=settings.faults.rate, kind=settings.faults.kind.value),
        score=score if predictor is None else replace(score, latency=LATENCY_TARGET),
    )


def _latency_predictor(table: str | None, *, space: SearchSpace, base: ArchConfig) -> LatencyPredictor | None:
    """latency.table's predictor, checked against the search's space and backbone (devices.load_predictor); None
    without a table. A table that cannot serve this search is one line (UserError)."""
    if table is None:
        return None
    if space.task != CLASSIFY:
        raise UserError(f"latency.table={table}: latency tables price classification spaces; space {space.name!r} "
                        f"has task {space.task!r} (leave latency.table unset)")
    try:
        return load_predictor(Path(table).expanduser().resolve(), space=space, base=base)
    except TableError as exc:
        raise UserError(f"latency.table={table}: {exc}") from None


def _precision(given: str) -> dict[str, object]:
    """TrainConfig's precision and layout for ``train.precision`` (auto: fp32 until calibration measures)."""
    return {"precision": "fp32" if given == AUTO else given, "channels_last": given == "bf16"}


def study_storage_url(tracking_uri: str, *, storage: str, given: str | None = None) -> str:
    """Where the Optuna study lives: ``given`` (``study.storage=``, an RDB URL) when set; else ``optuna.db`` beside a
    SQLite MLflow store, else in the Ray storage folder (``storage``: a folder or URI), else, when that is a URI
    (Optuna cannot keep SQLite in s3://), in the current folder."""
    if given:
        return given
    if (database := sqlite_path(tracking_uri)) is not None:
        folder = database.resolve().parent
    elif not is_uri(storage):
        folder = Path(storage).expanduser().resolve()
    else:
        folder = Path.cwd()
    return f"sqlite:///{folder / 'optuna.db'}"


def _concurrency(requested: int | None, *, hardware: str, budget: Budget) -> int:
    """``concurrency=`` or, by default, the trials that fit on this machine (on a cluster ``search.run`` recounts
    over its nodes once joined: :func:`search.execution.cluster.trial_slots`)."""
    if requested is not None:
        return requested
    return local_concurrency(budget=budget, hardware=hardware, cpus=float(os.cpu_count() or 1),
                             gpus=float(torch.cuda.device_count()) if hardware == "cuda" else 0.0)


def local_concurrency(*, budget: Budget, hardware: str, cpus: float, gpus: float) -> int:
    """Trials at once on one machine with ``cpus`` cores and ``gpus`` GPUs: on CUDA ``gpus / budget.gpu_per_trial``
    (the GPU is what a trial waits for; its CPU threads are a setting, not a reservation that should idle a GPU), on
    CPU ``cpus // budget.cpu_per_trial``."""
    here = Node(node_id="local", ip="127.0.0.1", cpus=cpus, gpus=gpus)
    return trial_slots([here], cpu_per_trial=0 if hardware == "cuda" else budget.cpu_per_trial,
                       gpu_per_trial=budget.gpu_per_trial if hardware == "cuda" else 0)
