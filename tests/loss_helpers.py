"""Shared by the loss tests: the masks and batches they feed L_HCL."""

from __future__ import annotations

import torch


def box_mask(size: int = 64, top: int = 16, bottom: int = 48) -> torch.Tensor:
    """(1, 1, size, size): a square foreground from `top` to `bottom` on both axes."""
    mask = torch.zeros(1, 1, size, size)
    mask[..., top:bottom, top:bottom] = 1
    return mask


def mixed_batch(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Four 64x64 images: a box, a thin strip (fewer foreground cells than K = 64: repeats), an
    all-foreground image (no background: contributes 0) and a tiny box."""
    gen = torch.Generator().manual_seed(seed)
    pred, real = torch.rand(4, 3, 64, 64, generator=gen), torch.rand(4, 3, 64, 64, generator=gen)
    mask = torch.zeros(4, 1, 64, 64)
    mask[0, :, 16:48, 16:48] = 1
    mask[1, :, 8:40, 8:16] = 1  # 16 cells
    mask[2] = 1
    mask[3, :, 4:12, 4:12] = 1  # 4 cells
    return pred, real, mask
