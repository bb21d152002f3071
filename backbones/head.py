"""Classifier-head pooling options (ArchConfig key ``head``): how the last feature map becomes one vector.

- ``avg``: timm's global average pooling, untouched (the default).
- ``attn_pool``: additive attention over positions (:class:`AttentionPool2d`) in place of the average.

The head is swapped at timm's ``SelectAdaptivePool2d`` (``global_pool`` on ResNet / MobileNetV3 / EfficientNet,
``head.global_pool`` on RegNet / ConvNeXt), keeping its output layout (flattened or ``N×C×1×1``), so whatever timm
runs after the pool (MobileNetV3's ``conv_head``, ConvNeXt's norm) is unchanged.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
from timm.layers import SelectAdaptivePool2d
from torch import nn

from .calls import Call, Edit


class AttentionPool2d(nn.Module):
    """Additive attention pooling: ``sum_n softmax_n(v·tanh(W x_n + b)) x_n`` over the H×W positions.

    Bahdanau et al., additive attention, https://arxiv.org/abs/1409.0473 (used as a pooling head e.g. in
    Ilse et al., attention-based MIL pooling, https://arxiv.org/abs/1802.04712). ``W`` is a 1×1 conv to
    ``channels // reduction`` hidden units, ``v`` a 1×1 conv to one score per position. ``v`` starts at zero, so at
    initialisation every position weighs ``1 / (H·W)`` and the head equals global average pooling.

    Args:
        channels: channels of the feature map it pools.
        reduction: hidden width is ``max(1, channels // reduction)``.
        flatten: return ``N×C`` (True) or ``N×C×1×1`` (False), as the pool it replaces did.
    """

    def __init__(self, channels: int, *, reduction: int = 4, flatten: bool = True) -> None:
        super().__init__()
        hidden = max(1, channels // reduction)
        self.proj = nn.Conv2d(channels, hidden, kernel_size=1)
        self.score = nn.Conv2d(hidden, 1, kernel_size=1)
        nn.init.zeros_(self.score.weight)
        nn.init.zeros_(self.score.bias)
        self.flatten = flatten

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weights = self.score(torch.tanh(self.proj(x))).flatten(2).softmax(dim=-1)  # N×1×HW, sums to 1
        pooled = (x.flatten(2) * weights).sum(dim=-1)  # N×C
        return pooled if self.flatten else pooled[:, :, None, None]


def _avg(pool: SelectAdaptivePool2d, channels: int) -> Call | None:
    return None  # timm's pool stays


def _attn_pool(pool: SelectAdaptivePool2d, channels: int) -> Call | None:
    return Call(AttentionPool2d, (channels,), {"flatten": isinstance(pool.flatten, nn.Flatten)})


# name -> call(timm's pool, feature channels) -> the constructor call of the module that takes the pool's place
HEADS: dict[str, Callable[[SelectAdaptivePool2d, int], Call | None]] = {"avg": _avg, "attn_pool": _attn_pool}


def check_head(name: object) -> str:
    """Return ``name`` if it is a registered head, else raise a one-line ``ValueError`` naming the choices."""
    if name not in HEADS:
        raise ValueError(f"unknown head {name!r}; valid heads: {', '.join(HEADS)}")
    return name  # type: ignore[return-value]


def install_head(model: nn.Module, *, head: str, in_chans: int, size: int = 32) -> Edit | None:
    """Replace ``model``'s global pool with ``HEADS[head]`` (``avg`` leaves the model as timm built it); returns the
    edit made, if any."""
    check_head(head)
    if head == "avg":
        return None
    pools = [name for name, module in model.named_modules() if isinstance(module, SelectAdaptivePool2d)]
    if not pools:
        raise ValueError(f"head {head!r} needs timm's SelectAdaptivePool2d, which {type(model).__name__} lacks")
    was_training = model.training
    with torch.no_grad():
        channels = model.eval().forward_features(torch.zeros(1, in_chans, size, size)).shape[1]
    model.train(was_training)
    parent_name, _, child = pools[0].rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    call = HEADS[head](getattr(parent, child), channels)
    setattr(parent, child, call.build())
    return Edit("set", pools[0], call)
