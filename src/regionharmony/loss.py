"""The losses of Sec. III-B and III-C: L1, L_pixel and the region-wise contrastive L_HCL.

    L_all = lambda_1 * L1(H, H^) + lambda_2 * L_pixel + lambda_3 * L_HCL        (Eq. 13)

Symbols follow the paper: H is the harmonised output, H^ (`real`) the ground truth, M the
foreground mask, K the number of sampled patches, tau the temperature.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from regionharmony.config import LossConfig


def l1_loss(prediction: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """L1 = ||H - H^||_1, averaged over the whole image."""
    return F.l1_loss(prediction, real)


def pixel_loss(prediction: torch.Tensor, real: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """L_pixel: the L1 distance inside the foreground mask only.

    Averaged over the foreground pixels of each image, then over the batch (per image, so that
    the batch mean splits exactly across data-parallel ranks). An empty mask gives 0.
    """
    diff = ((prediction - real).abs() * mask).sum(dim=(1, 2, 3))
    area = mask.sum(dim=(1, 2, 3)) * prediction.shape[1]
    return (diff / area.clamp_min(1.0)).mean()


class PatchProjection(nn.Module):
    """The shared two-layer MLP of Fig. 2 (CUT's PatchSampleF): 8*8*3 -> 256 -> 256, L2-normed."""

    def __init__(self, in_features: int = 192, hidden: int = 256, out: int = 256) -> None:
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Linear(in_features, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, out)
        )

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.mlp(patches), dim=-1)


def region_locations(mask: torch.Tensor, stride: int) -> torch.Tensor:
    """The sampling map S: cells of `stride` x `stride` pixels lying entirely inside `mask`.

    Returns a bool tensor (B, H // stride * W // stride), one entry per cell of the 1/stride grid.
    """
    inside = F.avg_pool2d(mask, stride, stride) >= 1.0 - 1e-6
    return inside.flatten(1)


def crop_patches(image: torch.Tensor, patch_size: int, stride: int) -> torch.Tensor:
    """phi of Eq. 8-9: the patch_size x patch_size patch centred on every cell of the grid.

    Returns (B, L, 3 * patch_size**2) with L the number of grid cells, in region_locations' order.
    Pixels beyond the image border are zero.
    """
    pad = (patch_size - stride) // 2
    cols = F.unfold(F.pad(image, (pad,) * 4), patch_size, stride=stride)
    return cols.transpose(1, 2)


def sample_indices(
    valid: torch.Tensor, k: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """K random indices of True entries: without replacement when there are at least K,
    with replacement otherwise. `valid` must hold at least one True. Drawn on the CPU."""
    candidates = valid.nonzero().squeeze(1).cpu()
    n = candidates.numel()
    if n >= k:
        pick = torch.randperm(n, generator=generator)[:k]
    else:
        pick = torch.randint(n, (k,), generator=generator)
    return candidates[pick].to(valid.device)


def region_contrastive_loss(
    prediction: torch.Tensor,
    real: torch.Tensor,
    mask: torch.Tensor,
    projection: PatchProjection,
    num_patches: int = 256,
    patch_size: int = 8,
    stride: int = 4,
    temperature: float = 0.07,
    seeds: list[int] | None = None,
) -> torch.Tensor:
    """L_HCL, Eq. 8-12.

    Samples. Negatives {N_k}: K patches of the harmonised foreground H^fg = H * M (Eq. 8);
    positives {P_i}: K patches of the ground-truth background H^^bg = H^ * (1 - M) (Eq. 9). Each
    set is drawn from the cells of the 1/`stride` sampling map lying wholly inside its region,
    and cropped from the masked image, so a patch never carries pixels of the other region.

    Queries. The paper leaves v^fg and v^bg undefined. We read both as the same vector: the
    embedding N_i of the i-th harmonised-foreground patch, so that Eq. 11 becomes

        L_CL = 1/K sum_i -log  exp(N_i.P_i / tau)
                               / (exp(N_i.P_i / tau) + sum_{k != i} exp(N_i.N_k / tau))

    Derivation: Eq. 10 asks for the probability that the query "would rather choose" the
    background (positive) style over the foreground (negative) styles, and the stated intent is to
    pull harmonised-foreground style toward ground-truth-background style. Only a query computed
    from H^fg carries that pull to the generator through the numerator (a query computed from the
    fixed ground truth would only push the foreground away from it through the denominator). The
    positive and negatives then come from the two sets exactly as in Eq. 10. The self term
    N_i.N_i = 1 is a constant that carries no gradient and would floor the loss at log 2, so it
    is left out (CUT masks its diagonal the same way); the sum runs over the other K - 1
    negatives, and over distinct locations when sampling had to repeat them.

    Images whose foreground or background has no valid cell contribute 0 (never NaN); the mean
    over the batch stands in for the 1/N sum over training images of Eq. 12.

    `seeds` (one per image) make the patch sampling of each image reproducible on its own, so
    that a data-parallel run samples exactly what a single process would for the same images;
    without them the global torch RNG is used.
    """
    fg_valid = region_locations(mask, stride)
    bg_valid = region_locations(1 - mask, stride)
    fg_patches = crop_patches(prediction * mask, patch_size, stride)
    bg_patches = crop_patches(real * (1 - mask), patch_size, stride)

    # the zero-weighted head term keeps every head parameter in the graph when no image of the
    # batch has both regions (data-parallel training requires every parameter to get a gradient)
    total = sum(p.sum() for p in projection.parameters()) * 0.0
    for b in range(prediction.shape[0]):
        if not (fg_valid[b].any() and bg_valid[b].any()):
            continue
        gen = None if seeds is None else torch.Generator().manual_seed(int(seeds[b]))
        fg_idx = sample_indices(fg_valid[b], num_patches, gen)
        bg_idx = sample_indices(bg_valid[b], num_patches, gen)
        # index_select, not fancy indexing: the latter's backward (index_put with accumulate)
        # sums repeated rows in a thread-dependent order, which made training irreproducible
        negatives = projection(fg_patches[b].index_select(0, fg_idx))  # {N_k}, the queries too
        positives = projection(bg_patches[b].index_select(0, bg_idx))  # {P_i}
        l_pos = (negatives * positives).sum(-1, keepdim=True)
        l_neg = negatives @ negatives.T
        same_location = fg_idx[:, None] == fg_idx[None, :]
        l_neg = l_neg.masked_fill(same_location, float("-inf"))
        logits = torch.cat([l_pos, l_neg], dim=1) / temperature
        target = torch.zeros(num_patches, dtype=torch.long, device=logits.device)
        total = total + F.cross_entropy(logits, target)
    return total / prediction.shape[0]


class HarmonizationLoss(nn.Module):
    """L_all of Eq. 13. Holds the contrastive head (created up front when lambda_3 > 0)."""

    def __init__(self, cfg: LossConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.projection = (
            PatchProjection(3 * cfg.patch_size**2, cfg.mlp_hidden, cfg.mlp_out)
            if cfg.lambda_hcl > 0
            else None
        )

    def forward(
        self,
        prediction: torch.Tensor,
        real: torch.Tensor,
        mask: torch.Tensor,
        seeds: list[int] | None = None,
    ) -> dict[str, torch.Tensor]:
        cfg = self.cfg
        terms = {
            "l1": l1_loss(prediction, real),
            "pixel": pixel_loss(prediction, real, mask),
        }
        total = cfg.lambda_l1 * terms["l1"] + cfg.lambda_pixel * terms["pixel"]
        if self.projection is not None:
            terms["hcl"] = region_contrastive_loss(
                prediction.float(),
                real.float(),
                mask.float(),
                self.projection,
                cfg.num_patches,
                cfg.patch_size,
                cfg.grid_stride,
                cfg.temperature,
                seeds,
            )
            total = total + cfg.lambda_hcl * terms["hcl"]
        terms["total"] = total
        return terms
