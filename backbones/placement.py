"""Find the stages of a timm model and insert attention modules into them.

A *stage* is an entry of ``model.feature_info`` whose module runs its children (the blocks) in order:
an ``nn.Sequential`` (ResNet ``layerN``, MobileNetV3 / EfficientNet ``blocks.N``), a timm ``RegStage``
(RegNet ``sN``), or the ``blocks`` Sequential of a timm ``ConvNeXtStage`` (ConvNeXt ``stages.N.blocks``: the
stage's downsample runs first, so the blocks are where attention goes). Stem entries (ResNet ``act1``,
MobileNetV3 ``bn1``) are skipped. Stage indices count from 0 in ``feature_info`` order.
timm feature_info: https://huggingface.co/docs/timm/feature_extraction

Positions (``POSITIONS``, the ArchConfig stage key ``position``) and which blocks they touch (stage key
``blocks``: ``every`` block of the stage, the default, or only the ``last`` one):

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

BLOCKS: tuple[str, ...] = ("every", "last")  # values of the ArchConfig stage key ``blocks``; first is the default

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
    install: Callable[[nn.Module, str], list[Slot]]
    unsupported: Callable[[nn.Module, str], list[str]]  # names of the stage's block classes that lack the slot
    takes_blocks: bool = True  # whether ``blocks`` (every | last) means anything here (stage_end places one module)


def _targets(stage: nn.Module, blocks: str) -> list[tuple[str, nn.Module]]:
    children = list(stage.named_children())
    return children if blocks == "every" else children[-1:]


def _install_after_block(stage: nn.Module, blocks: str) -> list[Slot]:
    slots = []
    for name, block in _targets(stage, blocks):
        wrapper = nn.Sequential(block, _Probe())
        setattr(stage, name, wrapper)
        slots.append(Slot(wrapper, "1", wraps=True))
    return slots


def _install_stage_end(stage: nn.Module, blocks: str) -> list[Slot]:
    stage.add_module("attn", _Probe())
    return [Slot(stage, "attn")]


def _install_in_block(stage: nn.Module, blocks: str) -> list[Slot]:
    slots = []
    for _, block in _targets(stage, blocks):
        slots.append(Slot(block, "se", replaced=getattr(block, "se")))
        block.se = _Probe()  # timm ResNet blocks hold se=None, which their forward skips
    return slots


def _no_block_lacks_slot(stage: nn.Module, blocks: str) -> list[str]:
    return []


def _blocks_without_se_slot(stage: nn.Module, blocks: str) -> list[str]:
    return sorted({type(b).__name__ for _, b in _targets(stage, blocks) if not isinstance(b, _SE_SLOT_BLOCKS)})


POSITIONS: dict[str, Position] = {p.name: p for p in (
    Position("after_block", _install_after_block, _no_block_lacks_slot),
    Position("stage_end", _install_stage_end, _no_block_lacks_slot, takes_blocks=False),
    Position("in_block", _install_in_block, _blocks_without_se_slot),
)}


def supported_positions(stage: nn.Module, blocks: str = "every") -> list[str]:
    """Names of the positions the blocks of ``stage`` (all of them, or the last) support."""
    return [name for name, p in POSITIONS.items() if not p.unsupported(stage, blocks)]


def install(stage: nn.Module, position: str, blocks: str = "every") -> list[Slot]:
    """Put placeholders for ``position`` into ``stage`` (in place); one-line ``ValueError`` if it is unsupported."""
    lacking = POSITIONS[position].unsupported(stage, blocks)
    if lacking:
        raise ValueError(f"position {position!r} is not supported by {', '.join(lacking)} blocks; "
                         f"valid positions here: {', '.join(supported_positions(stage, blocks))}")
    return POSITIONS[position].install(stage, blocks)


def _stage_entries(model: nn.Module) -> list[tuple[str, dict]]:
    """(stage name, its ``feature_info`` entry) for every entry that is a stage, in ``feature_info`` order."""
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
    stages = [info for _, info in _stage_entries(model)]
    return [i for i, info in enumerate(model.feature_info) if any(info is s for s in stages)]


def declared_stage_channels(model: nn.Module) -> list[int | None]:
    """Output channels of each stage (``find_stages`` order) as ``feature_info[i]["num_chs"]`` declares them.

    timm's ``num_chs`` is the channels of the entry module's output, which is the stage's output (a
    ``_STAGES_WITH_BLOCKS`` stage runs its blocks last). None where the entry hooks something else: a
    ``hook_type`` other than ``forward`` (e.g. ``forward_pre`` on an inner conv, EfficientNet's
    ``feature_location="expansion"``); there a dry run has to measure it.
    """
    return [info["num_chs"] if info.get("hook_type", "forward") == "forward" else None
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
