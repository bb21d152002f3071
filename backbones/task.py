"""Model tasks (ArchConfig key ``task``): what ``backbones.build`` puts on top of the timm model once attention is
placed in its stages. One entry per task; ``build`` asks the entry, never ``if task == ...``.

- ``classify``: the timm classifier, its global pool swapped for ``arch.head`` (``backbones.head``).
- ``segment``: a U-Net over the stage outputs (``backbones.unet``: smp's decoder, decoder attention, skip gates).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from torch import nn

from .calls import Edit
from .head import install_head
from .unet import attach_unet

_DRY_RUN_SIZE = 32  # px, as build's


@dataclass(frozen=True)
class ModelTask:
    """One task: ``top(model, arch=..., stages=...)`` -> (the finished model, the edits it made)."""

    name: str
    top: Callable[..., tuple[nn.Module, list[Edit]]]
    supernet: bool  # whether backbones.supernet covers it
    decoder: bool  # whether the ArchConfig has decoder blocks and skips


def _classifier(model: nn.Module, *, arch: Any, stages: Sequence[str]) -> tuple[nn.Module, list[Edit]]:
    head = install_head(model, head=arch.head, in_chans=arch.in_chans, size=_DRY_RUN_SIZE)
    return model, [head] if head else []


CLASSIFY = "classify"
MODEL_TASKS: dict[str, ModelTask] = {t.name: t for t in (
    ModelTask(CLASSIFY, _classifier, supernet=True, decoder=False),
    ModelTask("segment", attach_unet, supernet=False, decoder=True),
)}


def check_task(name: object) -> ModelTask:
    """The registered task ``name``, else a one-line ``ValueError`` naming the choices."""
    if name not in MODEL_TASKS:
        raise ValueError(f"unknown task {name!r}; valid tasks: {', '.join(MODEL_TASKS)}")
    return MODEL_TASKS[name]  # type: ignore[index]
