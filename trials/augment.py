"""Whole-batch augmentation on the batch's own device: random crop, horizontal flip, normalisation.

Everything is vectorised (one pad, one gather, one `torch.where`); there is no per-image Python loop,
no PIL and no DataLoader. Pass a `torch.Generator` on the batch's device to make it reproducible.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def random_crop(images: torch.Tensor, *, padding: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Zero-pad every image by `padding` px on each side, then cut an H×W window at a random offset per image.

    images: N×C×H×W (any dtype, uint8 typical). Returns the same shape and dtype. padding=0 is a no-op.
    """
    if padding <= 0:
        return images
    n, _, h, w = images.shape
    padded = F.pad(images, (padding, padding, padding, padding))  # zeros; N×C×(H+2p)×(W+2p)
    # One random (dy, dx) per image in 0..2p; index grids pick the window rows/cols per image.
    dy = torch.randint(0, 2 * padding + 1, (n,), device=images.device, generator=generator)
    dx = torch.randint(0, 2 * padding + 1, (n,), device=images.device, generator=generator)
    rows = dy[:, None] + torch.arange(h, device=images.device)  # N×H
    cols = dx[:, None] + torch.arange(w, device=images.device)  # N×W
    batch = torch.arange(n, device=images.device)[:, None, None]
    # Advanced indices on dims 0, 2, 3 around a slice on dim 1 -> result is N×H×W×C.
    return padded[batch, :, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2).contiguous()


def random_flip(images: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
    """Mirror each image left-right with probability 1/2. Same shape and dtype."""
    flip = torch.rand(images.shape[0], device=images.device, generator=generator) < 0.5
    return torch.where(flip[:, None, None, None], images.flip(3), images)


def normalize(images: torch.Tensor, *, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    """uint8 pixels (0–255) -> float32 (pixel/255 - mean) / std, per channel (mean/std on the 0–1 scale)."""
    shape = (1, len(mean), 1, 1)
    mean_255 = torch.tensor(mean, device=images.device).view(shape) * 255
    std_255 = torch.tensor(std, device=images.device).view(shape) * 255
    return (images.float() - mean_255) / std_255


def augment(
    images: torch.Tensor, *, crop_padding: int, flip: bool, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Random crop (if crop_padding > 0) then random horizontal flip (if flip); dtype and shape kept."""
    images = random_crop(images, padding=crop_padding, generator=generator)
    return random_flip(images, generator=generator) if flip else images
