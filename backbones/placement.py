"""Find the stages of a timm model and insert attention modules into them.

A *stage* is an entry of ``model.feature_info`` whose module runs its children (the blocks) in order:
an ``nn.Sequential`` (ResNet ``layerN``, MobileNetV3 / EfficientNet ``blocks.N``), a timm ``RegStage``
(RegNet ``sN``), or the ``blocks`` Sequential of a timm ``ConvNeXtStage`` (ConvNeXt ``stages.N.blocks``: the
stage's downsample runs first, so the blocks are where attention goes). Stem entries (ResNet ``act1``,
MobileNetV3 ``bn1``) are skipped. Stage indices count from 0 in ``feature_info`` order.
timm feature_info: https://huggingface.co/docs/timm/feature_extraction

MobileNetV2 (timm ``mobilenetv2_*``, ``EVERY_GROUP_FAMILIES``) is the exception: its ``feature_info`` names only the
block groups where the resolution drops (``blocks.0, 1, 2, 4, 6``), so ``blocks.3`` and ``blocks.5`` would be out of
reach; its stages are instead every group of ``blocks``, the seven bottleneck sequences of the paper's Table 2
(Sandler et al. 2018, https://arxiv.org/abs/1801.04381), so every inverted-residual block is reachable.

Positions (``POSITIONS``, the ArchConfig stage key ``position``) and which blocks they touch (stage key
``blocks``: ``every`` block of the stage, the default, only the ``last`` one, or explicit block indices counted
from 0 in the stage's run order, e.g. ``(0, 2)``; :func:`block_indices` is the one home of that rule):

- ``after_block``: block ``b`` becomes ``nn.Sequential(b, attn)``, i.e. after the residual add and activation.
- ``stage_end``: one module appended after the last block (child ``attn``); ``blocks`` does not apply (always once).
- ``in_block``: inside the block, before the residual add: the block's ``se`` slot, which timm applies after the
  block's last conv + norm (ResNet BasicBlock / Bottleneck: after ``bn2`` / ``bn3``, at the block's output width)
  or between the depthwise and the pointwise-linear conv (MobileNet / EfficientNet ``DepthwiseSeparableConv`` /
  ``InvertedResidual``: at the expanded width; RegNet ``Bottleneck``: after ``conv2``, at the bottleneck width).
  If the block already has an SE module there (MobileNetV3, EfficientNet-B0, RegNetY), the attention module
  **replaces** it, so the model can lose parameters. Blocks without such a slot (ConvNeXt, MobileNetV3's final
  ``ConvBnAct``) reject ``in_block`` with a one-line ``ValueError``.

Insertion is two-phase so channels are measured where the module sits: ``install`` puts parameter-free
placeholders at every slot, one dry forward pass records the channels each one sees, and ``Slot.fill`` then puts
the real module in the placeholder's place (see ``backbones.build``).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
# The one private timm import: the MobileNet / EfficientNet block classes live only in the private module
# timm.models._efficientnet_blocks; no public module re-exports them (timm 1.0.31: not timm.models,
# timm.models.efficientnet, timm.models.mobilenetv3 nor timm.layers). We need the classes, not a duck-typed
# ``hasattr(block, "se")``, because membership in _SE_SLOT_BLOCKS is the checked claim that a block's forward
# applies ``self.se`` before its residual add. If timm moves them, this import fails loudly at startup.
from timm.models._efficientnet_blocks import DepthwiseSeparableConv, EdgeResidual, InvertedResidual
from timm.models.convnext import ConvNeXtStage
from timm.models.regnet import Bottleneck as RegBottleneck
from timm.models.regnet import PreBottleneck as RegPreBottleneck
from timm.models.regnet import RegStage
from timm.models.resnet import BasicBlock, Bottleneck
from torch import nn

from .calls import Call, Edit

BLOCKS: tuple[str, ...] = ("every", "last")  # named values of the ArchConfig stage key ``blocks``; first is the default
Blocks = str | tuple[int, ...]  # a ``blocks`` value: a name in BLOCKS, or sorted distinct block indices (>= 0)
# timm architecture-name prefixes whose stages are every child of ``blocks`` rather than feature_info's entries.
EVERY_GROUP_FAMILIES: tuple[str, ...] = ("mobilenetv2_",)

# Stage classes whose forward runs their children in order, so children can be wrapped or appended.
_SEQUENTIAL_STAGES: tuple[type[nn.Module], ...] = (nn.Sequential, RegStage)
# Stage classes whose ``blocks`` child is such a Sequential and the last thing their forward runs.
_STAGES_WITH_BLOCKS: tuple[type[nn.Module], ...] = (ConvNeXtStage,)
# Block classes whose forward applies ``self.se`` (when not None) before the residual add.
_SE_SLOT_BLOCKS: tuple[type[nn.Module], ...] = (
    BasicBlock, Bottleneck, RegBottleneck, RegPreBottleneck, DepthwiseSeparableConv, InvertedResidual, EdgeResidual,
)


class _Probe(nn.Module):
    """Parameter-free placeholder at an insertion slot: passes its input through and records its channels."""

    def __init__(self) -> None:
        super().__init__()
        self.channels: int | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.channels = x.shape[1]
        return x


@dataclass
class Slot:
    """Where one attention module goes: ``getattr(parent, name)`` is a placeholder until ``fill`` is called."""

    parent: nn.Module
    name: str
    replaced: nn.Module | None = None  # what the slot held before (in_block: the block's own SE), if anything
    wraps: bool = False  # parent is the nn.Sequential(block, placeholder) that after_block made (an Edit "wrap")

    @property
    def channels(self) -> int:
        """Channels the module sees, known after one forward pass through the model."""
        channels = getattr(self.parent, self.name).channels
        if channels is None:
            raise ValueError(f"slot {type(self.parent).__name__}.{self.name} was not reached by the forward pass")
        return channels

    def fill(self, module: nn.Module) -> None:
        setattr(self.parent, self.name, module)


@dataclass(frozen=True)
class Position:
    """One registered position: ``install(stage, blocks)`` puts placeholders and returns their slots."""

    name: str
    install: Callable[[nn.Module, Blocks], list[Slot]]
    unsupported: Callable[[nn.Module, Blocks], list[str]]  # names of the stage's block classes that lack the slot
    takes_blocks: bool = True  # whether ``blocks`` (every | last | indices) means anything here (stage_end places one module)


def check_blocks(blocks: object) -> Blocks:
    """``blocks`` in its one spelling: a name in :data:`BLOCKS`, or a sorted tuple of distinct indices >= 0 (from a
    list or tuple of ints, or their text form ``"0,2"``); one-line ``ValueError`` otherwise."""
    if isinstance(blocks, str) and blocks not in BLOCKS and blocks.replace(",", "").isdigit():
        blocks = tuple(int(b) for b in blocks.split(","))
    if isinstance(blocks, str):
        if blocks not in BLOCKS:
            raise ValueError(f"unknown blocks {blocks!r}; valid: {', '.join(BLOCKS)} or a list of block indices")
        return blocks
    if not isinstance(blocks, (list, tuple)) or not blocks or not all(
            isinstance(b, int) and not isinstance(b, bool) and b >= 0 for b in blocks):
        raise ValueError(f"blocks={blocks!r} must be one of {', '.join(BLOCKS)} or a non-empty list of block "
                         f"indices >= 0")
    return tuple(sorted(set(blocks)))


def blocks_text(blocks: Blocks) -> str:
    """The flat text of a ``blocks`` value (MLflow param, Optuna choice): ``every``, ``last`` or ``0,2``."""
    return blocks if isinstance(blocks, str) else ",".join(map(str, blocks))


def block_indices(blocks: Blocks, depth: int) -> tuple[int, ...]:
    """Indices of the blocks ``blocks`` selects in a stage of ``depth`` blocks; one-line ``ValueError`` for an
    index the stage lacks."""
    if blocks == "every":
        return tuple(range(depth))
    if blocks == "last":
        return (depth - 1,)
    if blocks[-1] >= depth:
        raise ValueError(f"blocks {blocks_text(blocks)} names block {blocks[-1]}, but the stage has {depth} "
                         f"block{'s' if depth != 1 else ''} (0..{depth - 1})")
    return tuple(blocks)


def named_blocks(blocks: Blocks, depth: int) -> Blocks:
    """``blocks`` spelled by name where indices are one: all ``depth`` blocks -> ``every``, only the last -> ``last``."""
    if isinstance(blocks, str):
        return blocks
    return {tuple(range(depth)): "every", (depth - 1,): "last"}.get(tuple(blocks), tuple(blocks))


def _targets(stage: nn.Module, blocks: Blocks) -> list[tuple[str, nn.Module]]:
    children = [(n, c) for n, c in stage.named_children() if n != "attn"]
    return [children[i] for i in block_indices(blocks, len(children))]


def _install_after_block(stage: nn.Module, blocks: Blocks) -> list[Slot]:
    slots = []
    for name, block in _targets(stage, blocks):
        wrapper = nn.Sequential(block, _Probe())
        setattr(stage, name, wrapper)
        slots.append(Slot(wrapper, "1", wraps=True))
    return slots


def _install_stage_end(stage: nn.Module, blocks: Blocks) -> list[Slot]:
    stage.add_module("attn", _Probe())
    return [Slot(stage, "attn")]


def _install_in_block(stage: nn.Module, blocks: Blocks) -> list[Slot]:
    slots = []
    for _, block in _targets(stage, blocks):
        slots.append(Slot(block, "se", replaced=getattr(block, "se")))
        block.se = _Probe()  # timm ResNet blocks hold se=None, which their forward skips
    return slots


def _no_block_lacks_slot(stage: nn.Module, blocks: Blocks) -> list[str]:
    return []


def _blocks_without_se_slot(stage: nn.Module, blocks: Blocks) -> list[str]:
    return sorted({type(b).__name__ for _, b in _targets(stage, blocks) if not isinstance(b, _SE_SLOT_BLOCKS)})


POSITIONS: dict[str, Position] = {p.name: p for p in (
    Position("after_block", _install_after_block, _no_block_lacks_slot),
    Position("stage_end", _install_stage_end, _no_block_lacks_slot, takes_blocks=False),
    Position("in_block", _install_in_block, _blocks_without_se_slot),
)}


def supported_positions(stage: nn.Module, blocks: Blocks = "every") -> list[str]:
    """Names of the positions the blocks of ``stage`` (all of them, or the last) support."""
    return [name for name, p in POSITIONS.items() if not p.unsupported(stage, blocks)]


def install(stage: nn.Module, position: str, blocks: Blocks = "every") -> list[Slot]:
    """Put placeholders for ``position`` into ``stage`` (in place); one-line ``ValueError`` if it is unsupported
    (or ``blocks`` names a block the stage lacks)."""
    if POSITIONS[position].takes_blocks:
        block_indices(blocks, len([n for n, _ in stage.named_children() if n != "attn"]))
    lacking = POSITIONS[position].unsupported(stage, blocks)
    if lacking:
        raise ValueError(f"position {position!r} is not supported by {', '.join(lacking)} blocks; "
                         f"valid positions here: {', '.join(supported_positions(stage, blocks))}")
    return POSITIONS[position].install(stage, blocks)


def every_group_stages(model: nn.Module) -> bool:
    """Whether ``model``'s stages are every group of ``blocks`` (:data:`EVERY_GROUP_FAMILIES`), not feature_info's
    entries: then timm's ``forward_intermediates(..., extra_blocks=True)`` returns stage ``i`` at index ``i + 1``."""
    return getattr(model, "pretrained_cfg", {}).get("architecture", "").startswith(EVERY_GROUP_FAMILIES)


def _stage_entries(model: nn.Module) -> list[tuple[str, dict]]:
    """(stage name, its ``feature_info`` entry) for every entry that is a stage, in ``feature_info`` order; for an
    :data:`EVERY_GROUP_FAMILIES` model every group of ``blocks``, in run order (a group ``feature_info`` does not
    name gets the entry ``{"module": name}``, whose channels a dry run measures)."""
    if every_group_stages(model):
        named = {info["module"]: info for info in model.feature_info}
        return [(f"blocks.{i}", named.get(f"blocks.{i}", {"module": f"blocks.{i}"})) for i in range(len(model.blocks))]
    entries = []
    for info in getattr(model, "feature_info", []):
        module = model.get_submodule(info["module"])
        if isinstance(module, _SEQUENTIAL_STAGES):
            entries.append((info["module"], info))
        elif isinstance(module, _STAGES_WITH_BLOCKS):
            entries.append((f"{info['module']}.blocks", info))
    return entries


def find_stages(model: nn.Module) -> list[str]:
    """Dotted module names of the stages of a timm ``model``, in ``feature_info`` order."""
    return [name for name, _ in _stage_entries(model)]


def stage_feature_indices(model: nn.Module) -> list[int]:
    """Indices into ``model.feature_info`` of the entries that are stages (``find_stages`` order): what timm's
    ``forward_intermediates(indices=...)`` takes to return the stage outputs (``backbones.unet``)."""
    entries = _stage_entries(model)
    indices = [i for i, info in enumerate(model.feature_info) if any(info is s for _, s in entries)]
    if len(indices) != len(entries):
        missing = [name for name, info in entries if not any(info is f for f in model.feature_info)]
        raise ValueError(f"stages {', '.join(missing)} are not feature_info entries, so timm's forward_intermediates "
                         f"cannot return them (a U-Net needs every stage's output)")
    return indices


def declared_stage_channels(model: nn.Module) -> list[int | None]:
    """Output channels of each stage (``find_stages`` order) as ``feature_info[i]["num_chs"]`` declares them.

    timm's ``num_chs`` is the channels of the entry module's output, which is the stage's output (a
    ``_STAGES_WITH_BLOCKS`` stage runs its blocks last). None where the entry hooks something else: a
    ``hook_type`` other than ``forward`` (e.g. ``forward_pre`` on an inner conv, EfficientNet's
    ``feature_location="expansion"``); there a dry run has to measure it.
    """
    return [info.get("num_chs") if info.get("hook_type", "forward") == "forward" else None
            for _, info in _stage_entries(model)]


@torch.no_grad()
def dry_run(model: nn.Module, *, in_chans: int, size: int = 32) -> None:
    """One forward pass on a zero ``1 x in_chans x size x size`` input in eval mode (no RNG draws, no BN stat
    updates); restores the previous train/eval mode. Fills the placeholders' channel counts."""
    was_training = model.training
    try:
        model.eval()
        model(torch.zeros(1, in_chans, size, size))
    finally:
        model.train(was_training)


def block_channels(model: nn.Module, *, stages: Sequence[str], in_chans: int, size: int = 32) -> list[list[int]]:
    """Output channels of every block of every stage, measured by one dry forward pass with hooks."""
    found: list[list[int]] = [[] for _ in stages]
    hooks = [block.register_forward_hook(lambda _m, _i, out, i=i: found[i].append(out.shape[1]))
             for i, name in enumerate(stages) for block in model.get_submodule(name).children()]
    try:
        dry_run(model, in_chans=in_chans, size=size)
    finally:
        for h in hooks:
            h.remove()
    return found


def _set_submodule(model: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, child, module)


def apply_small_input(model: nn.Module, *, stages: Sequence[str]) -> list[Edit]:
    """Adapt a timm model to 28x28 / 32x32 inputs (Fashion-MNIST, CIFAR) in place.

    The stem conv (``pretrained_cfg['first_conv']``: ResNet ``conv1`` / ``conv1.0``, MobileNetV3 and EfficientNet
    ``conv_stem``, RegNet ``stem.conv``) gets stride 1; its padding already keeps the size at stride 1. A
    *patchify* stem conv (kernel == stride, ConvNeXt's 4x4 stride 4) cannot keep the size at stride 1 with an
    even kernel, so it is replaced by a 3x3 stride-1 padding-1 conv with the same channels (weights drawn as timm
    initialises ConvNeXt convs: truncated normal, std 0.02, zero bias); that is the only case where the
    parameter count changes. Every ``nn.MaxPool2d`` of the stem (the top-level children before the first stage,
    e.g. ResNet ``maxpool``) becomes ``nn.Identity``. The first stage then sees the input at full resolution
    (ResNet, EfficientNet, ConvNeXt) or half (MobileNetV3 ``blocks.0`` and RegNet ``s1`` stride 2).
    Returns the edits made, in order (``backbones.calls.Edit``).
    """
    first_conv = model.pretrained_cfg["first_conv"]
    conv = model.get_submodule(first_conv)
    edits = []
    if conv.stride != (1, 1) and tuple(conv.kernel_size) == tuple(conv.stride):
        call = Call(nn.Conv2d, (conv.in_channels, conv.out_channels),
                    {"kernel_size": 3, "stride": 1, "padding": 1, "bias": conv.bias is not None})
        stem = call.build()
        nn.init.trunc_normal_(stem.weight, std=0.02)
        if stem.bias is not None:
            nn.init.zeros_(stem.bias)
        _set_submodule(model, first_conv, stem)
        edits.append(Edit("set", first_conv, call))
    else:
        conv.stride = (1, 1)
        edits.append(Edit("stride1", first_conv))
    first_top = stages[0].split(".")[0]
    for top, child in model.named_children():
        if top == first_top:
            break
        for name, m in list(child.named_modules(prefix=top)):
            if isinstance(m, nn.MaxPool2d):
                _set_submodule(model, name, nn.Identity())
                edits.append(Edit("set", name, Call(nn.Identity)))
    return edits


def takes_blocks(position: str) -> bool:
    """Whether ``blocks`` applies at ``position`` (the one home of "stage_end takes no blocks")."""
    return POSITIONS[position].takes_blocks
