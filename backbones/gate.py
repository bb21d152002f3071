"""The additive attention gate of Attention U-Net, for a U-Net skip connection (ArchConfig ``skips``: ``gate``).

Oktay et al. 2018, "Attention U-Net: Learning Where to Look for the Pancreas", https://arxiv.org/abs/1804.03999
(section 2, Fig. 2): the skip features ``x`` are scaled per pixel by ``alpha = sigmoid(psi(relu(W_x x + W_g g)))``,
where ``g`` is the coarser decoder feature map that is about to be merged with ``x`` (the gating signal).
"""
from __future__ import annotations

import torch
from torch import nn


class AttentionGate(nn.Module):
    """Additive attention gate ``x * sigmoid(psi(relu(W_x x + up(W_g g))))`` (Oktay et al. 2018, Fig. 2).

    ``W_x`` and ``W_g`` are 1×1 convs to ``inter`` channels, ``psi`` a 1×1 conv to one coefficient per pixel.
    Where the paper brings ``x`` down to ``g``'s grid with a strided ``W_x`` and resamples ``alpha`` back up, this
    gate upsamples ``W_g g`` to ``x``'s size (bilinear), so it works for any pair of sizes (a small-input stem makes
    two features the same size). ``psi`` starts at zero weight and bias +3, so at initialisation ``alpha ≈ 0.95``
    everywhere and the gate nearly passes the skip through (no BatchNorm: it must train at batch 1).

    Args:
        channels: channels of the skip ``x`` (the output has the same shape as ``x``).
        gating_channels: channels of the gating signal ``g``.
        reduction: ``inter = max(1, channels // reduction)`` (the paper uses ``channels // 2``).
    """

    def __init__(self, channels: int, gating_channels: int, *, reduction: int = 2) -> None:
        super().__init__()
        inter = max(1, channels // reduction)
        self.theta = nn.Conv2d(channels, inter, kernel_size=1, bias=False)  # W_x
        self.phi = nn.Conv2d(gating_channels, inter, kernel_size=1)  # W_g (its bias is the paper's b_g)
        self.psi = nn.Conv2d(inter, 1, kernel_size=1)
        nn.init.zeros_(self.psi.weight)
        nn.init.constant_(self.psi.bias, 3.0)  # sigmoid(3) ≈ 0.95: start close to the ungated skip

    def forward(self, x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        gate = nn.functional.interpolate(self.phi(g), size=x.shape[2:], mode="bilinear", align_corners=False)
        alpha = torch.sigmoid(self.psi(torch.relu(self.theta(x) + gate)))  # N×1×H×W, in (0, 1)
        return x * alpha
