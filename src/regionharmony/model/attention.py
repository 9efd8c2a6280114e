"""Spatial-separated attention module, S2AM (Cun & Pun, TIP 2020), docs/model.md, 'The network'.

    out = gate_bg(f) * (1 - m) + (block(gate_spliced(f)) + gate_mixed(f)) * m

with the mask m resized to the feature size and both m and 1 - m smoothed by a fixed 5x5
Gaussian (sigma 1) so that the two branches blend across the object boundary.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from regionharmony.model.layers import downsample_mask, make_norm


class ChannelGate(nn.Module):
    """sigmoid(FC(ReLU(FC([avgpool, maxpool])))) * x, reduction 16."""

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        hidden = max(channels // reduction, 1)
        self.fc = nn.Sequential(
            nn.Linear(2 * channels, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, channels)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = torch.cat([x.mean(dim=(2, 3)), x.amax(dim=(2, 3))], dim=1)
        return x * torch.sigmoid(self.fc(pooled))[:, :, None, None]


class LearningBlock(nn.Module):
    """conv3x3 C->2C, norm, ELU, conv3x3 2C->C, norm, ELU: the spliced-region learner."""

    def __init__(self, channels: int, norm: str = "batch") -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, 2 * channels, 3, padding=1, bias=False),
            make_norm(norm, 2 * channels),
            nn.ELU(inplace=True),
            nn.Conv2d(2 * channels, channels, 3, padding=1, bias=False),
            make_norm(norm, channels),
            nn.ELU(inplace=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def gaussian_kernel(size: int = 5, sigma: float = 1.0) -> torch.Tensor:
    coords = torch.arange(size, dtype=torch.float32) - (size - 1) / 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    kernel = torch.outer(g, g)
    return (kernel / kernel.sum())[None, None]


class S2AM(nn.Module):
    def __init__(self, channels: int, norm: str = "batch") -> None:
        super().__init__()
        self.gate_background = ChannelGate(channels)
        self.gate_spliced = ChannelGate(channels)
        self.gate_mixed = ChannelGate(channels)
        self.block = LearningBlock(channels, norm)
        self.register_buffer("smoothing", gaussian_kernel(), persistent=False)

    def smooth(self, m: torch.Tensor) -> torch.Tensor:
        pad = self.smoothing.shape[-1] // 2
        # replicate rather than the reference's reflect padding: valid for any feature size
        return F.conv2d(F.pad(m, (pad,) * 4, mode="replicate"), self.smoothing.to(m.dtype))

    def forward(self, feature: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        m = downsample_mask(mask, feature.shape[-2:])
        fg, bg = self.smooth(m), self.smooth(1 - m)
        spliced = self.block(self.gate_spliced(feature)) + self.gate_mixed(feature)
        return self.gate_background(feature) * bg + spliced * fg
