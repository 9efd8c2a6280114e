"""L_all of Eq. 13 and its two pixel terms (Sec. III-C): L1 and [47]'s relative L1, L_pixel.

L_all = lambda_1 * L1(H, H^) + lambda_2 * L_pixel + lambda_3 * L_HCL        (Eq. 13)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import torch
import torch.nn.functional as F
from torch import nn

from regionharmony.config import HCL_QUERY_ALIASES, LossConfig, check_section
from regionharmony.loss.hcl import region_contrastive_loss
from regionharmony.loss.patches import PatchProjection


def l1_loss(prediction: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """L1 = ||H - H^||_1, averaged over the whole image (fp32)."""
    return F.l1_loss(prediction.float(), real.float())


def pixel_loss(prediction: torch.Tensor, real: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """L_pixel, [47]'s relative L1: per image, the sum of |H - H^| over the three channels and
    the foreground pixels, divided by the number of foreground pixels; then the batch mean.

    This is `l1_relative` of [47]'s code, vinthony/deep-blind-watermark-removal
    `scripts/utils/losses.py` at commit d8b5f3df5ea8760aaf725b34a4e8249704f857c8 (the same function
    in stefanLeong/S2CRNet `scripts/utils/losses.py` at 5b60ca002b67736ac25b70280c7c4a76a6b4e7a8),
    called with the one-channel mask in `scripts/machines/VX.py`: `area` sums the mask, so the
    channels are not counted in the denominator. An empty mask gives 0 here (there: a division
    by zero). `mask` is (B, 1, H, W).
    """
    prediction, real, mask = prediction.float(), real.float(), mask.float()
    error = ((prediction - real).abs() * mask).sum(dim=(1, 2, 3))
    area = mask.sum(dim=(1, 2, 3))
    return (error / area.clamp_min(1.0)).mean()


class HarmonizationLoss(nn.Module):
    """L_all of Eq. 13. Holds the contrastive head (created up front when lambda_3 > 0).

    Call it as `loss(prediction, real, mask, seeds)`; `seeds` are the per-image sampling seeds,
    a (B,) int64 tensor (any device; preferred: no recompilation under torch.compile) or a list
    of ints, or None for the global RNG. Returns the terms and "total", all fp32 scalars.
    """

    def __init__(self, cfg: LossConfig) -> None:
        super().__init__()
        # a LossConfig built by hand has not been through config.validate
        check_section(
            replace(cfg, hcl_query=HCL_QUERY_ALIASES.get(cfg.hcl_query, cfg.hcl_query)),
            "loss",
            "HarmonizationLoss",
        )
        self.cfg = cfg
        self.projection = (
            PatchProjection(3 * cfg.patch_size**2, cfg.mlp_hidden, cfg.mlp_out)
            if cfg.lambda_hcl > 0
            else None
        )

    def contrastive(
        self,
        prediction: torch.Tensor,
        real: torch.Tensor,
        mask: torch.Tensor,
        seeds: Sequence[int] | torch.Tensor | None = None,
    ) -> torch.Tensor:
        """L_HCL (Eq. 12) with this loss's settings and head."""
        cfg = self.cfg
        return region_contrastive_loss(
            prediction,
            real,
            mask,
            self.projection,
            cfg.num_patches,
            cfg.patch_size,
            cfg.grid_stride,
            cfg.temperature,
            seeds,
            cfg.hcl_query,
            cfg.patch_source,
        )

    def forward(
        self,
        prediction: torch.Tensor,
        real: torch.Tensor,
        mask: torch.Tensor,
        seeds: Sequence[int] | torch.Tensor | None = None,
        hcl: bool = True,
    ) -> dict[str, torch.Tensor]:
        """The terms of Eq. 13 and "total"; `hcl=False` leaves L_HCL out (benchmarks)."""
        cfg = self.cfg
        terms = {
            "l1": l1_loss(prediction, real),
            "pixel": pixel_loss(prediction, real, mask),
        }
        total = cfg.lambda_l1 * terms["l1"] + cfg.lambda_pixel * terms["pixel"]
        if self.projection is not None and hcl:
            terms["hcl"] = self.contrastive(prediction, real, mask, seeds)
            total = total + cfg.lambda_hcl * terms["hcl"]
        terms["total"] = total
        return terms
