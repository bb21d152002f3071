"""Attention modules the field uses that ``timm.layers`` lacks.

Every class is built as ``cls(channels, **knobs)`` and maps ``(N, C, H, W) -> (N, C, H, W)`` for any
``H, W >= 1``. None of them uses BatchNorm (the papers' versions do in places): a BatchNorm on a pooled
or single-channel map cannot train at batch 1 on a 1x1 map, and the host backbone already normalises.
Reduced widths are exactly ``channels // reduction`` (see ``backbones.attention``).
"""
from __future__ import annotations

import torch
from torch import nn


def _z_pool(x: torch.Tensor) -> torch.Tensor:
    """Max and mean over dim 1, stacked: ``(N, C, A, B) -> (N, 2, A, B)``."""
    return torch.cat([x.amax(dim=1, keepdim=True), x.mean(dim=1, keepdim=True)], dim=1)


class _ZPoolGate(nn.Module):
    """``x * sigmoid(conv_kxk(z_pool(x)))``: the gate shared by the spatial and triplet modules."""

    def __init__(self, kernel_size: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.conv(_z_pool(x)).sigmoid()


class SpatialGate(_ZPoolGate):
    """Spatial-only gate: the spatial half of CBAM (Woo et al. 2018, https://arxiv.org/abs/1807.06521).

    Channel max and mean -> ``kernel_size`` x ``kernel_size`` conv to one map -> sigmoid -> scale ``x``.
    """

    def __init__(self, channels: int, *, kernel_size: int = 7) -> None:
        super().__init__(kernel_size)


class TripletAttention(nn.Module):
    """Triplet attention (Misra et al. 2021, https://arxiv.org/abs/2010.03045).

    Three Z-pool + ``kernel_size`` conv gates over the (C, W), (H, C) and (H, W) planes -- the first two
    see the tensor rotated so that H resp. W plays the channel role -- and the three outputs are averaged.
    Parameter count is independent of ``channels``.
    """

    def __init__(self, channels: int, *, kernel_size: int = 7) -> None:
        super().__init__()
        self.cw, self.hc, self.hw = (_ZPoolGate(kernel_size) for _ in range(3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        cw = self.cw(x.permute(0, 2, 1, 3)).permute(0, 2, 1, 3)  # pool over H, gate the (C, W) plane
        hc = self.hc(x.permute(0, 3, 2, 1)).permute(0, 3, 2, 1)  # pool over W, gate the (H, C) plane
        return (cw + hc + self.hw(x)) / 3


class BottleneckAttention(nn.Module):
    """Bottleneck Attention Module, BAM (Park et al. 2018, https://arxiv.org/abs/1807.06514).

    ``x * (1 + sigmoid(channel(x) + spatial(x)))`` with
    channel: global average pool -> 1x1 MLP with ``channels // reduction`` hidden units -> ``(N, C, 1, 1)``;
    spatial: 1x1 reduce to ``channels // reduction`` -> two 3x3 convs with dilation 4 -> 1x1 to one map
    ``(N, 1, H, W)``. Paper defaults: reduction 16, dilation 4.
    """

    def __init__(self, channels: int, *, reduction: int = 16, dilation: int = 4) -> None:
        super().__init__()
        mid = channels // reduction
        self.channel = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Conv2d(channels, mid, 1), nn.ReLU(inplace=True), nn.Conv2d(mid, channels, 1))
        self.spatial = nn.Sequential(
            nn.Conv2d(channels, mid, 1), nn.ReLU(inplace=True),
            nn.Conv2d(mid, mid, 3, padding=dilation, dilation=dilation), nn.ReLU(inplace=True),
            nn.Conv2d(mid, mid, 3, padding=dilation, dilation=dilation), nn.ReLU(inplace=True),
            nn.Conv2d(mid, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * (1 + (self.channel(x) + self.spatial(x)).sigmoid())


class SelfAttention2d(nn.Module):
    """Convolutional self-attention block of SAGAN (Zhang et al. 2018, https://arxiv.org/abs/1805.08318).

    1x1 query/key projections to ``channels // reduction`` (paper: reduction 8), a 1x1 value projection
    to ``channels``, softmax over all H*W positions, and ``x + gamma * attended`` with a learnable scalar
    ``gamma`` initialised to 0, so the block is the identity at initialisation.
    """

    def __init__(self, channels: int, *, reduction: int = 8) -> None:
        super().__init__()
        mid = channels // reduction
        self.query = nn.Conv2d(channels, mid, 1)
        self.key = nn.Conv2d(channels, mid, 1)
        self.value = nn.Conv2d(channels, channels, 1)
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        q = self.query(x).flatten(2)  # (N, C', HW)
        k = self.key(x).flatten(2)
        v = self.value(x).flatten(2)  # (N, C, HW)
        attn = torch.bmm(q.transpose(1, 2), k).softmax(dim=-1)  # (N, HW_i, HW_j): position i reads from j
        out = torch.bmm(v, attn.transpose(1, 2)).view(n, c, h, w)
        return x + self.gamma * out


class PointwiseSpatialAttention(nn.Module):
    """Point-wise spatial attention, PSA (Zhao et al. 2018, https://hszhao.github.io/papers/eccv18_psanet.pdf).

    Two branches on features reduced to ``channels // reduction`` by a 1x1 conv + ReLU:
    *collect* (position i gathers from every j, weights normalised over the sources j) and *distribute*
    (position j scatters to every i, weights normalised over the targets i, i.e. the transposed map).
    Their aggregated features are concatenated, projected back to ``channels`` by a 1x1 conv and added to
    ``x``.

    Adaptation (documented choice): PSANet predicts each position's over-completed (2H-1)x(2W-1) attention
    map with a 1x1 conv whose width depends on the feature size, which is unknown here (the module must
    work on any H x W, down to 1x1). As in public size-agnostic PSA re-implementations, each branch instead
    derives its H*W x H*W map from a scaled bilinear query-key product of the reduced features, so the
    parameter count is independent of H, W. The paper's BatchNorm after the convs is dropped (see module
    docstring).
    """

    def __init__(self, channels: int, *, reduction: int = 4) -> None:
        super().__init__()
        mid = channels // reduction
        self.collect = _PsaBranch(channels, mid, normalise_over_sources=True)
        self.distribute = _PsaBranch(channels, mid, normalise_over_sources=False)
        self.proj = nn.Conv2d(2 * mid, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.proj(torch.cat([self.collect(x), self.distribute(x)], dim=1))


class _PsaBranch(nn.Module):
    """One PSA branch: reduce, build the position-to-position map, aggregate the reduced features."""

    def __init__(self, channels: int, mid: int, *, normalise_over_sources: bool) -> None:
        super().__init__()
        self.reduce = nn.Sequential(nn.Conv2d(channels, mid, 1), nn.ReLU(inplace=True))
        self.query = nn.Conv2d(mid, mid, 1)
        self.key = nn.Conv2d(mid, mid, 1)
        self.over_sources = normalise_over_sources
        self.scale = mid ** -0.5

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.reduce(x)
        n, c, height, width = h.shape
        q, k = self.query(h).flatten(2), self.key(h).flatten(2)  # (N, C', HW)
        logits = torch.bmm(q.transpose(1, 2), k) * self.scale  # (N, HW_i, HW_j), i = target, j = source
        # collect: softmax over sources j per target i; distribute: softmax over targets i per source j.
        attn = logits.softmax(dim=2) if self.over_sources else logits.softmax(dim=1)
        out = torch.bmm(h.flatten(2), attn.transpose(1, 2))  # out_i = sum_j attn[i, j] * h_j
        return out.view(n, c, height, width)
