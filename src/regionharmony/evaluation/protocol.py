"""The evaluation protocol on one batch (`score_batch`): what `evaluate`, per-epoch validation
and the notebooks all score with."""

from __future__ import annotations

import numpy as np
import torch

from regionharmony.evaluation.metrics import fmse, image_metrics
from regionharmony.model.harmonizer import blend

DEFAULT_SSIM_MODE = "iih"  # comparable with the paper's Table III, copied from IIH


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """(B, 3, H, W) in [0, 1] -> uint8 (B, H, W, 3), rounded as an 8-bit image file stores it."""
    scaled = images.detach().float().clamp(0, 1).mul(255).round()
    return scaled.to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


def score_batch(
    raw: torch.Tensor | None,
    composite: torch.Tensor,
    mask: torch.Tensor,
    real: torch.Tensor,
    *,
    psnr_range: str = "official",
    ssim_mode: str | None = DEFAULT_SSIM_MODE,
    paste_back: bool = True,
) -> tuple[np.ndarray, list[dict[str, float]]]:
    """The evaluation protocol on one batch: blend, clip, round to 8 bits, score each image.

    `raw` is the network's output H (None: the identity baseline, prediction = composite);
    tensors are (B, C, H, W) in [0, 1], the mask in {0, 1}. Returns the 8-bit predictions
    (B, H, W, 3) and one `metrics.image_metrics` dict per image (no SSIM when `ssim_mode` is
    None, which per-epoch validation uses). `paste_back` False scores `raw` as it is, without
    the composite's background put back (saved predictions of other methods, `evaluate
    --no-paste-back`).
    """
    if raw is None:
        prediction = composite
    else:
        prediction = blend(raw, composite, mask) if paste_back else raw.clamp(0, 1)
    preds, reals = to_uint8(prediction), to_uint8(real)
    composites = preds if raw is None else to_uint8(composite)
    masks = mask[:, 0].detach().cpu().numpy() > 0.5
    scores = []
    for p, c, r, m in zip(preds, composites, reals, masks, strict=True):
        score = image_metrics(p.astype(np.float64), r.astype(np.float64), m, psnr_range, ssim_mode)
        # the input's own error: which composite-error bin the image belongs to
        score["composite_fmse"] = fmse(c.astype(np.float64), r.astype(np.float64), m)
        scores.append(score)
    return preds, scores
