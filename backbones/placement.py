"""Find the stages of a timm model and insert attention modules into them.

A *stage* is an entry of ``model.feature_info`` whose module runs its children (the blocks) in order:
an ``nn.Sequential`` (ResNet ``layerN``, MobileNetV3 ``blocks.N``) or a timm ``RegStage`` (RegNet ``sN``).
Stem entries (ResNet ``act1``, MobileNetV3 ``bn1``) are skipped. Stage indices count from 0 in
``feature_info`` order. timm feature_info: https://huggingface.co/docs/timm/feature_extraction
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from timm.models.regnet import RegStage
from torch import nn

MakeAttn = Callable[[int], nn.Module]  # channels -> attention module
# A position edits one stage in place: (stage module, output channels of each block, make) -> None.
Position = Callable[[nn.Module, Sequence[int], MakeAttn], None]

# Stage classes whose forward runs their children in order, so children can be wrapped or appended.
_SEQUENTIAL_STAGES: tuple[type[nn.Module], ...] = (nn.Sequential, RegStage)


def _after_block(stage: nn.Module, block_channels: Sequence[int], make: MakeAttn) -> None:
    """Every block ``b`` becomes ``nn.Sequential(b, attn)``: after the residual add and activation."""
    for (name, block), channels in zip(list(stage.named_children()), block_channels, strict=True):
        setattr(stage, name, nn.Sequential(block, make(channels)))


def _stage_end(stage: nn.Module, block_channels: Sequence[int], make: MakeAttn) -> None:
    """One module appended after the last block of the stage (child name ``attn``)."""
    stage.add_module("attn", make(block_channels[-1]))


POSITIONS: dict[str, Position] = {
    "after_block": _after_block,
    "stage_end": _stage_end,
}


def find_stages(model: nn.Module) -> list[str]:
    """Dotted module names of the stages of a timm ``model``, in ``feature_info`` order."""
    names = [info["module"] for info in getattr(model, "feature_info", [])]
    return [n for n in names if isinstance(model.get_submodule(n), _SEQUENTIAL_STAGES)]


@torch.no_grad()
def block_channels(model: nn.Module, *, stages: Sequence[str], in_chans: int, size: int = 32) -> list[list[int]]:
    """Output channels of every block of every stage, measured by one dry forward pass with hooks.

    Runs in eval mode on a zero ``1 x in_chans x size x size`` input (no RNG draws, no BN stat updates)
    and restores the previous train/eval mode.
    """
    found: list[list[int]] = [[] for _ in stages]
    hooks = [block.register_forward_hook(lambda _m, _i, out, i=i: found[i].append(out.shape[1]))
             for i, name in enumerate(stages) for block in model.get_submodule(name).children()]
    was_training = model.training
    try:
        model.eval()
        model(torch.zeros(1, in_chans, size, size))
    finally:
        model.train(was_training)
        for h in hooks:
            h.remove()
    return found


def _set_submodule(model: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, child, module)


def apply_small_input(model: nn.Module, *, stages: Sequence[str]) -> None:
    """Adapt a timm model to 28x28 / 32x32 inputs (Fashion-MNIST, CIFAR) in place.

    Sets the stride of the stem conv (``pretrained_cfg['first_conv']``, e.g. ``conv1.0`` for resnet10t,
    ``conv_stem`` for MobileNetV3) to 1 and replaces every ``nn.MaxPool2d`` of the stem (the top-level
    children before the first stage, e.g. ResNet ``maxpool``) with ``nn.Identity``. Parameters are unchanged;
    the first stage then sees the input at full (ResNet) or half (MobileNetV3 ``blocks.0`` strides) resolution.
    """
    conv = model.get_submodule(model.pretrained_cfg["first_conv"])
    conv.stride = (1, 1)
    first_top = stages[0].split(".")[0]
    for top, child in model.named_children():
        if top == first_top:
            break
        for name, m in list(child.named_modules(prefix=top)):
            if isinstance(m, nn.MaxPool2d):
                _set_submodule(model, name, nn.Identity())
