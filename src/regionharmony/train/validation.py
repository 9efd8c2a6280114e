"""Per-epoch validation, the Fig. 8/9 curves: MSE, PSNR and fMSE of the model in eval mode and
fp32 (`evaluation.protocol.score_batch`, no SSIM) on `train.val_limit` pairs of the training
root's `train.val_split` at the training size. Not the tables' protocol: the training root is
the resize cache of `prepare`, and the tables score the originals at `evaluate.size`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Subset

from regionharmony.config import TrainConfig
from regionharmony.data.dataset import HarmonyDataset
from regionharmony.evaluation.protocol import score_batch


def validation_indices(total: int, limit: int) -> list[int]:
    """Which pairs of the validation list are scored: all of them (`limit` 0), else `limit`
    pairs spread evenly over the list (first and last included), so that every subset of an
    iHarmony4 list, which is grouped by subset, keeps its share."""
    if not limit or limit >= total:
        return list(range(total))
    return np.linspace(0, total - 1, limit).round().astype(int).tolist()


@torch.no_grad()
def validation_scores(
    model: nn.Module,
    data_root: Path,
    tc: TrainConfig,
    subsets: list[str] | None,
    workers: int,
) -> dict[str, float]:
    """Mean MSE, PSNR and fMSE over the validation pairs; decoding runs in `workers`."""
    device = next(model.parameters()).device
    val_set = HarmonyDataset(data_root, tc.val_split, subsets=subsets, eval_size=tc.image_size)
    loader = DataLoader(
        Subset(val_set, validation_indices(len(val_set), tc.val_limit)),
        batch_size=tc.batch_size,
        num_workers=workers,
        pin_memory=device.type == "cuda",
    )
    model.eval()
    scores: dict[str, list[float]] = {"mse": [], "psnr": [], "fmse": []}
    for batch in loader:
        composite, mask = batch["composite"].to(device), batch["mask"].to(device)
        raw = model(composite, mask)  # fp32 whatever the training precision
        _, per_image = score_batch(raw, composite, mask, batch["real"], ssim_mode=None)
        for image in per_image:
            for key in scores:
                scores[key].append(image[key])
    return {k: float(np.mean(v)) for k, v in scores.items()}
