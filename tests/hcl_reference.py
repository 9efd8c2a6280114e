"""The per-image L_HCL loop that the batched `region_contrastive_loss` replaced, kept as its
reference (tests) and as the baseline of benchmarks/hcl_step.py.

`reference_hcl` is the earlier implementation, one image at a time: dense patches of the whole
grid (`crop_patches`), rows picked with index_select, one (K, K) product per image; extended to
every reading of the queries and to given cells. `reference_sample` is the earlier CPU sampler
(per-image torch.Generator, randperm / randint over nonzero()), which the benchmark times as the
old training step did.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from regionharmony.loss import PatchProjection, crop_patches, region_locations


def reference_sample(
    valid: torch.Tensor, k: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """The earlier sampler: K random indices of True entries of a 1-D `valid` (at least one),
    without replacement when there are at least K, i.i.d. with replacement otherwise; CPU."""
    candidates = valid.nonzero().squeeze(1).cpu()
    n = candidates.numel()
    pick = (
        torch.randperm(n, generator=generator)[:k]
        if n >= k
        else torch.randint(n, (k,), generator=generator)
    )
    return candidates[pick].to(valid.device)


def _row_loss(pos_query, positives, neg_query, keys, same, temperature):
    l_pos = (pos_query * positives).sum(-1, keepdim=True)
    l_neg = (neg_query @ keys.T).masked_fill(same, float("-inf"))
    logits = torch.cat([l_pos, l_neg], dim=1) / temperature
    target = torch.zeros(logits.shape[0], dtype=torch.long, device=logits.device)
    return F.cross_entropy(logits, target)


def reference_hcl(
    prediction: torch.Tensor,
    real: torch.Tensor,
    mask: torch.Tensor,
    projection: PatchProjection,
    num_patches: int = 256,
    patch_size: int = 8,
    stride: int = 4,
    temperature: float = 0.07,
    query: str = "paper",
    patch_source: str = "image",
    cells: tuple[torch.Tensor, torch.Tensor] | None = None,
    seeds: list[int] | None = None,
) -> torch.Tensor:
    """L_HCL one image at a time. With `cells` (B, K) each, those cells; otherwise the earlier
    per-image CPU sampling from `seeds`."""
    fg_valid = region_locations(mask, stride)
    bg_valid = region_locations(1 - mask, stride)
    if patch_source == "image":
        source_of, grid_stride = (lambda image: image), stride
    else:
        source_of, grid_stride = (lambda image: F.avg_pool2d(image, stride, stride)), 1
    fg_all = crop_patches(source_of(prediction * mask), patch_size, grid_stride)
    bg_all = crop_patches(source_of(real * (1 - mask)), patch_size, grid_stride)
    truth_all = (
        crop_patches(source_of(real * mask), patch_size, grid_stride)
        if query == "truth_gated"
        else None
    )

    total = sum(p.sum() for p in projection.parameters()) * 0.0
    for b in range(prediction.shape[0]):
        if not (fg_valid[b].any() and bg_valid[b].any()):
            continue
        if cells is not None:
            fg_idx, bg_idx = cells[0][b], cells[1][b]
        else:
            gen = None if seeds is None else torch.Generator().manual_seed(int(seeds[b]))
            fg_idx = reference_sample(fg_valid[b], num_patches, gen)
            bg_idx = reference_sample(bg_valid[b], num_patches, gen)
        x = fg_all[b].index_select(0, fg_idx)
        positives = projection(bg_all[b].index_select(0, bg_idx))
        same = fg_idx[:, None] == fg_idx[None, :]

        def row_loss(pos_query, neg_query, keys, positives=positives, same=same):
            return _row_loss(pos_query, positives, neg_query, keys, same, temperature)

        if query == "truth_gated":
            frozen = projection(x.detach())
            with torch.no_grad():
                truth = projection(truth_all[b].index_select(0, fg_idx))
                below = (frozen * positives).sum(-1) < (truth * positives).sum(-1)
            pos_query = torch.where(below[:, None], projection(x), frozen)
            loss = row_loss(pos_query, frozen, frozen)
        else:
            negatives = projection(x)
            frozen = projection(x.detach()) if query in ("detached_keys", "pull") else None
            if query in ("paper", "shared"):
                loss = row_loss(negatives, negatives, negatives)
            elif query == "detached_keys":
                loss = row_loss(negatives, negatives, frozen)
            elif query == "pull":
                loss = row_loss(negatives, frozen, frozen)
            elif query == "bg_query":
                loss = row_loss(negatives, positives, negatives)
            else:
                raise ValueError(query)
        total = total + loss
    return total / prediction.shape[0]


def cut_patchnce(
    feat_q: torch.Tensor,
    feat_pos: torch.Tensor,
    feat_neg: torch.Tensor,
    tau: float,
    detach_pos: bool = False,
    detach_neg: bool = False,
) -> torch.Tensor:
    """CUT's `PatchNCELoss.forward` (taesungp/contrastive-unpaired-translation,
    models/patchnce.py) line for line for one image, with the paper's samples put where CUT
    reads its keys: the positive column against `feat_pos` ({P_i}, ground-truth background)
    and the negative block against `feat_neg` ({N_k}, harmonised foreground). CUT's first line,
    `feat_k = feat_k.detach()`, is `detach_pos` / `detach_neg` here: which of the two the
    adaptation detached is what the readings differ in (loss/hcl.py). Per-patch losses."""
    if detach_pos:
        feat_pos = feat_pos.detach()
    if detach_neg:
        feat_neg = feat_neg.detach()
    num_patches, dim = feat_q.shape
    l_pos = torch.bmm(feat_q.view(num_patches, 1, -1), feat_pos.view(num_patches, -1, 1))
    l_pos = l_pos.view(num_patches, 1)
    l_neg_curbatch = torch.bmm(feat_q.view(1, -1, dim), feat_neg.view(1, -1, dim).transpose(2, 1))
    diagonal = torch.eye(num_patches, dtype=torch.bool)[None, :, :]
    l_neg_curbatch.masked_fill_(diagonal, -10.0)
    l_neg = l_neg_curbatch.view(-1, num_patches)
    out = torch.cat((l_pos, l_neg), dim=1) / tau
    target = torch.zeros(out.size(0), dtype=torch.long)
    return F.cross_entropy(out, target, reduction="none")
