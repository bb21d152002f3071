"""Turn the Hydra config into a checked :class:`SearchPlan` before anything is written or Ray starts."""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from search.errors import UserError
from search.settings import RUN_SETTINGS, check_settings
from search.tracking import check_tracking_uri
from spaces import Budget, SearchSpace, SpaceError, check_space_fits, load_space
from search.tuning import FaultInjection, TrialSettings
from trials import DATASETS, DatasetMissingError, ProbeConfig, TensorData, TrainConfig, load_dataset
from trials.constraints import Constraints

NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_.-]*"  # a search name becomes a folder (runs/NAME) and an MLflow run name


@dataclass(frozen=True)
class SearchPlan:
    """Everything a search needs, validated."""

    name: str
    space: SearchSpace
    hardware: str  # "cpu" or "cuda": which budget is used and where trials run
    budget: Budget
    trial_budget: TrialSettings
    concurrency: int  # trials at once
    sampler: str
    seed: int
    data: TensorData
    asha_grace_period: int  # epochs
    asha_reduction_factor: float
    constraints: Constraints  # hard budgets, checked in each trial after its probe
    faults: FaultInjection  # deliberate failures (testing); off by default
    latency_reference: bool  # time the plain backbone interleaved with each trial's model (latency_rel)
    tracking_uri: str
    experiment: str
    storage: Path  # Ray Tune storage folder (absolute)

    @property
    def arch_fields(self) -> dict[str, Any]:
        """The ArchConfig fields fixed for the whole search (the rest is sampled)."""
        return {"backbone": self.budget.backbone, "in_chans": self.data.in_chans, "num_classes": self.data.num_classes,
                "backbone_kwargs": dict(self.budget.backbone_kwargs)}


def prepare(cfg: DictConfig) -> SearchPlan:
    """Validate ``cfg`` (settings, space, budget overrides, tracking store, dataset, backbone). Writes nothing."""
    check_settings(cfg, rules=RUN_SETTINGS)
    if cfg.device == "cuda" and not torch.cuda.is_available():
        raise UserError("device=cuda but no CUDA device is visible; use device=auto or device=cpu")
    hardware = "cuda" if cfg.device == "cuda" or (cfg.device == "auto" and torch.cuda.is_available()) else "cpu"
    try:
        space = load_space(str(cfg.space))
        budget = space.budgets["gpu" if hardware == "cuda" else "cpu"].with_overrides(
            OmegaConf.to_container(cfg.budget, resolve=True))
    except SpaceError as exc:
        raise UserError(str(exc)) from None
    if space.dataset not in DATASETS:
        raise UserError(f"space {space.name!r}: unknown dataset {space.dataset!r}; valid datasets: {', '.join(DATASETS)}")
    name = cfg.name or f"{space.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    if not re.fullmatch(NAME_PATTERN, str(name)):
        raise UserError(f"name={name!r}: use letters, digits, '.', '_' and '-' only")
    check_tracking_uri(str(cfg.mlflow.tracking_uri))
    try:
        data = load_dataset(space.dataset, root=cfg.data.root, train_size=budget.train_size,
                            val_size=budget.val_size, seed=int(cfg.seed), download=bool(cfg.data.download))
    except (DatasetMissingError, ValueError) as exc:  # ValueError: sizes the dataset cannot supply
        raise UserError(str(exc)) from None
    try:
        check_space_fits(space, backbone=budget.backbone, in_chans=data.in_chans,
                         backbone_kwargs=budget.backbone_kwargs)
    except SpaceError as exc:
        raise UserError(str(exc)) from None
    constraints = Constraints(max_latency_ms=cfg.constraints.max_latency_ms, max_params_m=cfg.constraints.max_params_m)
    return SearchPlan(
        name=str(name),
        space=space,
        hardware=hardware,
        budget=budget,
        trial_budget=TrialSettings(
            train=TrainConfig(epochs=budget.epochs, batch_size=budget.batch_size, lr=budget.lr,
                              weight_decay=budget.weight_decay, compile=bool(cfg.compile), seed=int(cfg.seed)),
            probe=ProbeConfig(runs=int(cfg.latency.runs), warmup=int(cfg.latency.warmup),
                              batch=int(cfg.latency.batch), precision=str(cfg.latency.precision),
                              channels_last=bool(cfg.latency.channels_last)),
            constraints=constraints,
            threads=budget.cpu_per_trial, device=hardware,
        ),
        concurrency=_concurrency(cfg.concurrency, hardware=hardware, budget=budget),
        sampler=str(cfg.sampler),
        seed=int(cfg.seed),
        data=data,
        asha_grace_period=int(cfg.asha.grace_period),
        asha_reduction_factor=float(cfg.asha.reduction_factor),
        constraints=constraints,
        faults=FaultInjection(rate=float(cfg.faults.rate), kind=str(cfg.faults.kind)),
        latency_reference=bool(cfg.latency.reference),
        tracking_uri=str(cfg.mlflow.tracking_uri),
        experiment=str(cfg.mlflow.experiment),
        storage=Path(str(cfg.storage)).expanduser().resolve(),
    )


def _concurrency(requested: Any, *, hardware: str, budget: Budget) -> int:
    if requested is not None:  # checked by RUN_SETTINGS
        return int(requested)
    if hardware == "cuda":
        return max(1, int(torch.cuda.device_count() / budget.gpu_per_trial))
    return max(1, (os.cpu_count() or 1) // budget.cpu_per_trial)
