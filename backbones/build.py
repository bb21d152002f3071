"""``build(arch)``: ArchConfig (``backbones.ArchConfig``, or its JSON form) -> timm backbone with attention per stage.

The ArchConfig checks its own names and knobs; ``build`` checks what needs the backbone: that it is a timm model,
its stage count, the positions its blocks support, and every knob against the channels where each module sits
(``in_block``: the block's inner width).
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import timm
import torch
from torch import nn

from .arch import ArchConfig, StageConfig
from .attention import attention_call, check_attention
from .calls import Call, Edit
from .task import MODEL_TASKS
from .placement import (Slot, apply_small_input, block_channels, declared_stage_channels, dry_run, find_stages,
                        install, supported_positions)

# Families covered by tests/backbones; any timm model whose feature_info names Sequential stages may work.
SUPPORTED_BACKBONES: tuple[str, ...] = (
    "resnet10t", "resnet18", "resnet50",                          # ResNet: BasicBlock, Bottleneck
    "mobilenetv3_small_100", "mobilenetv3_small_075", "mobilenetv3_large_100",   # MobileNetV3
    "efficientnet_b0", "efficientnet_lite0",                      # EfficientNet (with / without SE)
    "regnetx_002", "regnety_002",                                 # RegNet (without / with SE)
    "convnext_atto",                                              # ConvNeXt (no in_block slot)
    "mobilenetv2_100", "mobilenetv2_050",                         # MobileNetV2: every block group a stage
)
_DRY_RUN_SIZE = 32  # px; the dry run only reads channel counts; 32 survives the /32 stride of every tested family


def _check_backbone(name: object) -> str:
    if not isinstance(name, str) or not timm.is_model(name):
        raise ValueError(f"unknown backbone {name!r}: not a timm model name; "
                         f"tested: {', '.join(SUPPORTED_BACKBONES)}")
    return name


def _create(backbone: str, *, in_chans: int, num_classes: int, small_input: bool,
            backbone_kwargs: Mapping[str, Any]) -> tuple[nn.Module, list[str], list[Edit]]:
    try:
        model = timm.create_model(backbone, pretrained=False, in_chans=in_chans, num_classes=num_classes,
                                  **backbone_kwargs)
    except TypeError as err:
        raise ValueError(f"backbone {backbone!r} rejects backbone_kwargs={dict(backbone_kwargs)!r}: {err}") from None
    stages = find_stages(model)
    if not stages:
        raise ValueError(f"backbone {backbone!r} has no Sequential stages in feature_info; "
                         f"tested: {', '.join(SUPPORTED_BACKBONES)}")
    return model, stages, apply_small_input(model, stages=stages) if small_input else []


def build(arch: ArchConfig | Mapping[str, Any]) -> nn.Module:
    """Build the model an ArchConfig describes (a classifier, or with ``task: segment`` a ``backbones.unet.UNet``) (its JSON form is parsed first); weights depend only on the torch seed.

    Everything is validated before any attention module is built; errors are one-line ``ValueError``s.
    Stages with ``attn: none`` are left untouched, so a plain arch (``arch.plain()``) is exactly the timm model
    (same parameters, same state-dict keys, same outputs under the same seed).
    """
    return build_recorded(arch)[0]


def build_recorded(arch: ArchConfig | Mapping[str, Any]) -> tuple[nn.Module, list[Edit]]:
    """:func:`build`, and every edit it made to the timm model, in order (``backbones.calls.Edit``): what
    ``backbones.standalone`` writes out so the model can be rebuilt without this package."""
    arch = ArchConfig.from_dict(arch)
    backbone = _check_backbone(arch.backbone)
    model, stages, edits = _create(backbone, in_chans=arch.in_chans, num_classes=arch.num_classes,
                            small_input=arch.small_input, backbone_kwargs=arch.backbone_kwargs)
    if len(arch.stages) != len(stages):
        raise ValueError(f"backbone {backbone!r} has {len(stages)} stages (0..{len(stages) - 1}: "
                         f"{', '.join(stages)}); ArchConfig gives {len(arch.stages)} stage dicts")
    # Placeholders at every slot, one dry run to learn their channels, then the real modules.
    slots: list[list[Slot]] = []
    for i, (spec, name) in enumerate(zip(arch.stages, stages)):
        if spec.is_none:
            slots.append([])
            continue
        try:
            slots.append(install(model.get_submodule(name), spec.position, spec.blocks))
        except ValueError as err:
            raise ValueError(f"stage {i} ({name}) of {backbone}: {err}") from None
    if any(slots):
        dry_run(model, in_chans=arch.in_chans, size=_DRY_RUN_SIZE)
    for i, (spec, stage_slots) in enumerate(zip(arch.stages, slots)):
        for kind, knobs in spec.modules if stage_slots else ():
            try:
                check_attention(kind, channels=min(s.channels for s in stage_slots), **knobs)
            except ValueError as err:
                raise ValueError(f"stage {i} ({stages[i]}): {err}") from None
    paths = {id(module): path for path, module in model.named_modules()}
    for spec, stage_slots in zip(arch.stages, slots):
        for slot in stage_slots:
            call = slot_call(spec, channels=slot.channels)
            slot.fill(call.build())
            parent = paths[id(slot.parent)]
            edits.append(Edit("wrap", parent, call) if slot.wraps else Edit("set", f"{parent}.{slot.name}", call))
    model, top = MODEL_TASKS[arch.task].top(model, arch=arch, stages=stages)  # classifier head, or a U-Net
    return model, edits + top


def slot_call(spec: StageConfig, *, channels: int) -> Call:
    """The checked constructor call of what ``spec`` puts at one slot of ``channels`` channels: its module, or its
    stack ``nn.Sequential(first, then)`` (each built for the same channels, run in order)."""
    calls = [attention_call(kind, channels=channels, **knobs) for kind, knobs in spec.modules]
    return calls[0] if len(calls) == 1 else Call(nn.Sequential, tuple(calls))


@lru_cache(maxsize=None)
def _stage_depths(backbone: str, kwargs_json: str) -> tuple[int, ...]:
    with torch.random.fork_rng(devices=[]):
        model, stages, _ = _create(backbone, in_chans=3, num_classes=0, small_input=False,
                                backbone_kwargs=json.loads(kwargs_json))
    return tuple(len(list(model.get_submodule(name).children())) for name in stages)  # blocks, in run order


def canonical(arch: ArchConfig) -> ArchConfig:
    """``arch`` in its canonical form (``ArchConfig.canonical``) with its backbone's blocks per stage: two
    architectures are the same computation iff their canonical forms are equal."""
    return arch.canonical(depths=stage_depths(backbone=arch.backbone, backbone_kwargs=arch.backbone_kwargs))


def stage_depths(*, backbone: str, backbone_kwargs: Mapping[str, Any] | None = None) -> list[int]:
    """Blocks per stage of ``backbone`` (cached): what ``blocks`` indices count (0 .. depth - 1); :func:`canonical`
    uses it (one block: every == last; indices naming all blocks == every)."""
    kwargs_json = json.dumps(dict(backbone_kwargs or {}), sort_keys=True)
    return list(_stage_depths(_check_backbone(backbone), kwargs_json))


@lru_cache(maxsize=None)
def _stage_channels(backbone: str, in_chans: int, kwargs_json: str) -> tuple[int, ...]:
    with torch.random.fork_rng(devices=[]):  # building the probe model must not shift the caller's RNG
        model, stages, _ = _create(backbone, in_chans=in_chans, num_classes=0, small_input=False,
                                backbone_kwargs=json.loads(kwargs_json))
    declared = declared_stage_channels(model)  # feature_info's num_chs: every tested family declares them all
    if None not in declared:
        return tuple(declared)
    return tuple(chs[-1] for chs in block_channels(model, stages=stages, in_chans=in_chans, size=_DRY_RUN_SIZE))


def stage_channels(*, backbone: str, in_chans: int = 3, backbone_kwargs: Mapping[str, Any] | None = None) -> list[int]:
    """Output channels of each stage of ``backbone`` (cached); ``len()`` is the number of stages.

    Read from ``feature_info`` (``num_chs``) without a forward pass; a dry run measures them only for a model whose
    ``feature_info`` does not declare a stage's output (none of the tested families).

    Every block of a stage in the tested families outputs these channels, so a ``reduction`` r is valid
    for stage i at ``after_block`` / ``stage_end`` iff ``stage_channels(...)[i] // r >= 1``. ``in_block`` modules
    sit at the block's inner width (equal for ResNet and RegNet, wider for MobileNet / EfficientNet), which
    ``build`` checks.
    """
    kwargs_json = json.dumps(dict(backbone_kwargs or {}), sort_keys=True)
    return list(_stage_channels(_check_backbone(backbone), in_chans, kwargs_json))


@lru_cache(maxsize=None)
def _stage_positions(backbone: str, kwargs_json: str) -> tuple[tuple[str, ...], ...]:
    with torch.random.fork_rng(devices=[]):
        model, stages, _ = _create(backbone, in_chans=3, num_classes=0, small_input=False,
                                backbone_kwargs=json.loads(kwargs_json))
    return tuple(tuple(supported_positions(model.get_submodule(name), "every")) for name in stages)


def stage_positions(*, backbone: str, backbone_kwargs: Mapping[str, Any] | None = None) -> list[tuple[str, ...]]:
    """Positions each stage of ``backbone`` supports with ``blocks: every`` (then also with ``last``; cached).

    E.g. MobileNetV3's last stage (a ``ConvBnAct``) and every ConvNeXt stage lack ``in_block``.
    """
    kwargs_json = json.dumps(dict(backbone_kwargs or {}), sort_keys=True)
    return list(_stage_positions(_check_backbone(backbone), kwargs_json))
