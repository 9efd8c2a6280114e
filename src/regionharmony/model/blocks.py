"""Residual UNet levels (Hertz et al., CVPR 2019), as used in the authors' code lineage.

An encoder level is a 3x3 conv + norm + ReLU followed by `blocks` residual blocks
(conv3x3, norm, + skip, ReLU); a decoder level first upsamples with a 2x2 stride-2 transposed
conv (+ norm + ReLU), concatenates the encoder skip, optionally applies S2AM to the 2C-channel
concatenation, then runs the same conv + residual blocks (docs/model.md, 'The network').
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from regionharmony.model.attention import S2AM
from regionharmony.model.layers import make_norm


class ResidualStack(nn.Module):
    """conv3x3-norm-ReLU, then `blocks` times: conv3x3, norm, + input, ReLU."""

    def __init__(self, in_ch: int, out_ch: int, blocks: int, norm: str) -> None:
        super().__init__()
        self.conv_in = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.norm_in = make_norm(norm, out_ch)
        self.convs = nn.ModuleList(nn.Conv2d(out_ch, out_ch, 3, padding=1) for _ in range(blocks))
        self.norms = nn.ModuleList(make_norm(norm, out_ch) for _ in range(blocks))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.norm_in(self.conv_in(x)))
        for conv, norm in zip(self.convs, self.norms, strict=True):
            x = F.relu(norm(conv(x)) + x)
        return x


class DecoderLevel(nn.Module):
    """Transposed-conv upsampling, skip concatenation, optional S2AM, residual stack."""

    def __init__(self, in_ch: int, out_ch: int, blocks: int, norm: str, attention: bool) -> None:
        super().__init__()
        self.up = nn.ConvTranspose2d(in_ch, out_ch, 2, stride=2)
        self.norm_up = make_norm(norm, out_ch)
        self.s2am = S2AM(2 * out_ch, norm) if attention else None
        self.stack = ResidualStack(2 * out_ch, out_ch, blocks, norm)

    def forward(self, x: torch.Tensor, skip: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = torch.cat([F.relu(self.norm_up(self.up(x))), skip], dim=1)
        if self.s2am is not None:
            x = self.s2am(x, mask)
        return self.stack(x)
