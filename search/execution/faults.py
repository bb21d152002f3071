"""TESTING ONLY: deliberate trial failures, for testing that a search survives them (``faults.rate`` /
``faults.kind``; off by default; not a user setting).

A wrapper around the trainable (:func:`with_faults`), not code inside it: the chosen trials get a model that fails
the way real trials fail, through the real training loop:

- ``nan``: a weight is set to NaN before training, so the loop sees a NaN loss and raises ``TrialDiverged``;
- ``raise`` / ``oom``: epoch 1's evaluation (the first eval-mode forward after training steps) raises
  ``RuntimeError`` / what a CUDA out-of-memory raises (``torch.OutOfMemoryError``; simulated, since a CPU machine
  cannot run out of GPU memory).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from backbones import ArchConfig, build
from search.settings.plan import FAULT_KINDS, MIXED, FaultInjection


def failing_kind(faults: FaultInjection, number: int | None) -> str | None:
    """The failure kind trial ``number`` (Optuna's trial number) gets under ``faults``, or None: the trials and kinds
    :class:`~search.settings.plan.FaultInjection` describes."""
    if number is None or faults.rate <= 0 or math.floor((number + 1) * faults.rate) <= math.floor(number * faults.rate):
        return None
    if faults.kind != MIXED:
        return faults.kind
    return ("oom", "nan", "raise")[(math.floor((number + 1) * faults.rate) - 1) % 3]


def _fail_after_first_epoch(error: Callable[[str], BaseException]) -> Callable[[nn.Module, tuple], None]:
    """A forward pre-hook that raises at the first eval-mode forward after training steps (epoch 1's evaluation;
    the latency probe's eval forwards come before any training step and pass)."""
    state = {"trained": False}

    def hook(module: nn.Module, args: tuple) -> None:
        if module.training:
            state["trained"] = True
        elif state["trained"]:
            raise error("injected failure, after epoch 1's training steps")

    return hook


def _raise(model: nn.Module) -> None:
    model.register_forward_pre_hook(_fail_after_first_epoch(RuntimeError))


def _out_of_memory(model: nn.Module) -> None:
    model.register_forward_pre_hook(_fail_after_first_epoch(
        lambda where: torch.OutOfMemoryError(f"CUDA out of memory ({where}). Tried to allocate 2.00 GiB")))


def _poison(model: nn.Module) -> None:
    with torch.no_grad():
        next(p for p in model.parameters() if p.dim() > 1).fill_(float("nan"))


FAULTS: dict[str, Callable[[nn.Module], None]] = {"raise": _raise, "oom": _out_of_memory, "nan": _poison}
assert tuple(FAULTS) == FAULT_KINDS, "search.settings.plan.FAULT_KINDS lists the failures for the settings"


@dataclass(frozen=True)
class _FaultyBuild:
    """``backbones.build`` followed by the failure ``kind`` (picklable: Ray ships it to the trial's worker)."""

    kind: str

    def __call__(self, arch: ArchConfig) -> nn.Module:
        model = build(arch)
        FAULTS[self.kind](model)
        return model


def with_faults(trainable: Callable[..., Any], *, faults: FaultInjection) -> Callable[..., Any]:
    """``trainable`` (a Ray function trainable taking ``build_model=``) that fails for the trials ``faults`` picks."""
    if faults.rate <= 0:
        return trainable

    @functools.wraps(trainable)
    def faulty(config: dict[str, Any], **kwargs: Any) -> Any:
        kind = failing_kind(faults, config.get("optuna_trial"))
        return trainable(config, **kwargs, **({"build_model": _FaultyBuild(kind)} if kind else {}))

    return faulty
