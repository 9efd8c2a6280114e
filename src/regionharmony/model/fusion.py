"""External style fusion (Sec. III-A, Eq. 1-7) and the ablation blocks of Fig. 8/9.

Every block maps a decoder feature D_i, the encoder feature E_i of the same resolution and the
full-resolution foreground mask M to the augmented feature D^_i. The mask is resized to the
feature size by nearest neighbour (M_i). Masked statistics follow RAIN (Ling et al., CVPR 2021):
`regionharmony.model.layers.masked_mean_std`, which falls back to mean 0, std 1 over an empty region
(an all-foreground image has no background).

Learned affines use the (1 + gamma) * x + beta convention with gamma = beta = 0 at start, so a
freshly initialised affine is the identity ("all the hyper-parameters are initialized as 0").
"""

from __future__ import annotations

import torch
from torch import nn

from regionharmony.model.layers import downsample_mask, masked_mean_std


class Affine(nn.Module):
    """Per-channel (1 + gamma) * x + beta, zero-initialised: f^s and f^b of Eq. 6-7."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.zeros(channels))
        self.beta = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * (1 + self.gamma[None, :, None, None]) + self.beta[None, :, None, None]


class StyleFusion(nn.Module):
    """The paper's external style fusion, Eq. 1-7.

    Foreground (Eq. 4): D_i^fg normalised with the mean/std of the ENCODER background
    E_i * (1 - M_i); background (Eq. 5): D_i^bg normalised with the mean/std of the DECODER
    background D_i * (1 - M_i). Each goes through its own affine (Eq. 6, 7) and the two are
    recombined through the mask (the channel addition D^_i = psi(D^fg) (+) psi(D^bg), where the
    two terms live on disjoint regions).
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.affine_fg = Affine(channels)
        self.affine_bg = Affine(channels)

    def forward(self, decoder: torch.Tensor, encoder: torch.Tensor, mask: torch.Tensor):
        m = downsample_mask(mask, decoder.shape[-2:])
        mu_e, sigma_e = masked_mean_std(encoder, 1 - m)
        mu_d, sigma_d = masked_mean_std(decoder, 1 - m)
        fg = self.affine_fg((decoder - mu_e) / sigma_e)  # Eq. 4, 6
        bg = self.affine_bg((decoder - mu_d) / sigma_d)  # Eq. 5, 7
        return fg * m + bg * (1 - m)


class AdaINFusion(nn.Module):
    """Plain AdaIN (Huang & Belongie, ICCV 2017) on the foreground, the Fig. 8/9 baseline.

    The foreground is re-normalised with its own statistics and restyled with the decoder's
    background statistics; the background passes unchanged. Parameter-free, like AdaIN.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()

    def forward(self, decoder: torch.Tensor, encoder: torch.Tensor, mask: torch.Tensor):
        m = downsample_mask(mask, decoder.shape[-2:])
        mu_f, sigma_f = masked_mean_std(decoder, m)
        mu_b, sigma_b = masked_mean_std(decoder, 1 - m)
        fg = (decoder - mu_f) / sigma_f * sigma_b + mu_b
        return fg * m + decoder * (1 - m)


class RAINFusion(nn.Module):
    """Region-aware adaptive instance normalisation (RainNet's RAIN block), Fig. 8/9.

    Background normalised with its own statistics; foreground normalised with its own and
    restyled with the decoder background's; each through a zero-initialised affine.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.affine_fg = Affine(channels)
        self.affine_bg = Affine(channels)

    def forward(self, decoder: torch.Tensor, encoder: torch.Tensor, mask: torch.Tensor):
        m = downsample_mask(mask, decoder.shape[-2:])
        mu_f, sigma_f = masked_mean_std(decoder, m)
        mu_b, sigma_b = masked_mean_std(decoder, 1 - m)
        fg = self.affine_fg((decoder - mu_f) / sigma_f * sigma_b + mu_b)
        bg = self.affine_bg((decoder - mu_b) / sigma_b)
        return fg * m + bg * (1 - m)


class NoFusion(nn.Module):
    """Identity: Table VI rows A and B (no style fusion)."""

    def __init__(self, channels: int) -> None:
        super().__init__()

    def forward(self, decoder: torch.Tensor, encoder: torch.Tensor, mask: torch.Tensor):
        return decoder


FUSION_BLOCKS: dict[str, type[nn.Module]] = {
    "style": StyleFusion,
    "adain": AdaINFusion,
    "rain": RAINFusion,
    "none": NoFusion,
}


def make_fusion(kind: str, channels: int) -> nn.Module:
    if kind not in FUSION_BLOCKS:
        raise ValueError(f"unknown fusion block {kind!r}; choose one of {sorted(FUSION_BLOCKS)}")
    return FUSION_BLOCKS[kind](channels)
