"""Small pieces the network's blocks share: the norm layer, the mask at a feature's size, and
masked channel statistics (RAIN's, Ling et al. CVPR 2021)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

EPS = 1e-5


def make_norm(kind: str, channels: int) -> nn.Module:
    """Affine batch norm (the reference) or affine instance norm (per-image statistics)."""
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    return nn.InstanceNorm2d(channels, affine=True)


def downsample_mask(mask: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """M_i: the (B, 1, H, W) mask resized nearest to a feature's `size` (no-op at that size)."""
    if mask.shape[-2:] == size:
        return mask
    return F.interpolate(mask, size=size, mode="nearest")


def masked_mean_std(
    x: torch.Tensor, m: torch.Tensor, eps: float = EPS
) -> tuple[torch.Tensor, torch.Tensor]:
    """Channel-wise mean and std of `x` (B, C, H, W) over the region `m` (B, 1, H, W):

        mean = sum(x * m) / (sum(m) + eps)
        std = sqrt(sum(((x - mean) * m)^2) / (sum(m) + eps) + eps)

    Returns tensors of shape (B, C, 1, 1). An empty region gives mean 0 and std 1 (the features
    pass through unnormalised instead of being divided by sqrt(eps)).
    """
    area = m.sum(dim=(2, 3), keepdim=True)
    mean = (x * m).sum(dim=(2, 3), keepdim=True) / (area + eps)
    var = (((x - mean) * m) ** 2).sum(dim=(2, 3), keepdim=True) / (area + eps)
    std = torch.sqrt(var + eps)
    empty = area == 0
    return mean.masked_fill(empty, 0.0), std.masked_fill(empty, 1.0)
