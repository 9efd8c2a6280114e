"""The objective of Sec. III-B and III-C, one module per part:

patches     the sampling map, the 8x8 patches phi (Eq. 8-9), the projection head, the draws
hcl         the region-wise contrastive loss L_HCL (Eq. 10-12)
objective   L1, L_pixel and L_all (Eq. 13)
"""

from regionharmony.config import HCL_QUERIES, HCL_QUERY_ALIASES, PATCH_SOURCES
from regionharmony.loss.hcl import info_nce, region_contrastive_loss
from regionharmony.loss.objective import HarmonizationLoss, l1_loss, pixel_loss
from regionharmony.loss.patches import (
    PatchProjection,
    cell_scores,
    crop_patches,
    gather_patches,
    patch_source_image,
    region_locations,
    sample_cells,
    seed_tensor,
)

__all__ = [
    "HCL_QUERIES",
    "HCL_QUERY_ALIASES",
    "PATCH_SOURCES",
    "HarmonizationLoss",
    "PatchProjection",
    "cell_scores",
    "crop_patches",
    "gather_patches",
    "info_nce",
    "l1_loss",
    "patch_source_image",
    "pixel_loss",
    "region_contrastive_loss",
    "region_locations",
    "sample_cells",
    "seed_tensor",
]
