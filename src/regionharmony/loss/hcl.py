"""The region-wise contrastive loss L_HCL (Sec. III-B, Eq. 10-12).

    L_all = lambda_1 * L1(H, H^) + lambda_2 * L_pixel + lambda_3 * L_HCL        (Eq. 13)

Symbols follow the paper: H is the harmonised output, H^ (`real`) the ground truth, M the
foreground mask, K the number of sampled patches, tau the temperature.

L_HCL is computed for the whole batch at once: patch locations come from a counter-based hash of
(per-image seed, cell index) evaluated on the device, one top-k picks them, one gather crops them
and one batched matrix product compares them. Nothing in it reads a value back to the host, its
shapes depend only on the input shapes (so it runs under torch.compile), and it runs in fp32 even
inside a bf16 autocast region.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from regionharmony.config import HCL_QUERIES, HCL_QUERY_ALIASES, PATCH_SOURCES
from regionharmony.loss.patches import (
    _BG_STREAM,
    _FG_STREAM,
    PatchProjection,
    gather_patches,
    patch_source_image,
    region_locations,
    sample_cells,
    seed_tensor,
)

# -- Eq. 10-12 ----------------------------------------------------------------------------------


def info_nce(
    pos_query: torch.Tensor,
    positives: torch.Tensor,
    neg_query: torch.Tensor,
    negatives: torch.Tensor,
    excluded: torch.Tensor,
    temperature: float,
) -> torch.Tensor:
    """Eq. 11 for a batch of images, one value per image:

        1/K sum_i -log exp(q_i . P_i / tau) / (exp(q_i . P_i / tau) + sum_k exp(u_i . N_k / tau))

    with q = `pos_query`, u = `neg_query` (B, K, D); `excluded` (B, K, K) removes negatives k from
    the sum of row i. Computed in fp32.
    """
    l_pos = (pos_query * positives).sum(-1, keepdim=True)  # (B, K, 1)
    l_neg = torch.bmm(neg_query, negatives.transpose(1, 2)).masked_fill(excluded, float("-inf"))
    logits = torch.cat([l_pos, l_neg], dim=2) / temperature
    return (torch.logsumexp(logits, dim=2) - logits[..., 0]).mean(dim=1)


def region_contrastive_loss(
    prediction: torch.Tensor,
    real: torch.Tensor,
    mask: torch.Tensor,
    projection: PatchProjection,
    num_patches: int = 256,
    patch_size: int = 8,
    stride: int = 4,
    temperature: float = 0.07,
    seeds: Sequence[int] | torch.Tensor | None = None,
    query: str = "paper",
    patch_source: str = "image",
    cells: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> torch.Tensor:
    """L_HCL, Eq. 8-12, for the whole batch.

    Samples. Negatives {N_k}: K patches of the harmonised foreground H^fg = H * M (Eq. 8);
    positives {P_i}: K patches of the ground-truth background H^^bg = H^ * (1 - M) (Eq. 9). Each
    set is drawn from the cells of the 1/`stride` sampling map lying wholly inside its region
    (`sample_cells`, seeded per image by `seeds`: a (B,) int64 tensor or a list of ints) and
    cropped from the masked image, so a patch never carries pixels of the other region. `cells`
    = (negative cells, positive cells), each (B, K), replaces the draw (tests use it).

    phi (`patch_source`). Eq. 8 writes phi(H^fg; S_i): the patch is cropped from H^fg at the
    location S_i, and docs/model.md reads it on the full-resolution image: an 8x8 patch centred on
    the 4x4 pixels of the cell ("image", the default). The text says "crop 8x8 patches around
    the negative locations in S^fg", the 1/4 sampling map itself; "sampling_map" does that (each
    patch then covers 32x32 image pixels at 1/4 resolution; the text's argument against a 1/8 map,
    that the 8x8 patches would overlap more, fits this reading better than the image one).

    Queries (`query`). Eq. 10-11 use a query v^bg against the positive and a query v^fg against
    the negatives and define neither. Writing p_i0 for the softmax weight of the positive logit
    of row i and p_ik for that of negative k, the readings are:

    "paper" (the default; "shared" is its earlier name): CUT's PatchNCE [39], which the paper
        names as its model, with the paper's samples. Eq. 10-11's symbols in code:
            v^bg = v^fg = N_i   the query: the embedding of the i-th harmonised-foreground patch
                                (`negatives[:, i]`, MLP(phi(H^fg; S_i)));
            P_i                 its positive: the i-th ground-truth-background patch
                                (`positives[:, i]`, MLP(phi(H^^bg; S_i)), Eq. 9);
            N_k, k != i         the negatives: the other harmonised-foreground patches;
            tau                 `temperature`;
            l_i = -log exp(N_i.P_i/tau) / (exp(N_i.P_i/tau) + sum_{k != i} exp(N_i.N_k/tau)),
        L_HCL the mean of l_i over the K patches and the images (Eq. 11-12). Where this goes
        beyond the printed formula: the denominator leaves out the self term k = i and every k
        sampled at the same location as i (a small region repeats locations), see below.
        d l_i / d N_i = (-(1 - p_i0) P_i + sum_k p_ik N_k) / tau and d l_i / d N_k = p_ik N_i / tau:
        it rewards each foreground patch for resembling its background partner (alignment) and
        for differing from the other foreground patches (uniformity). The second part makes the
        foreground more varied whatever the truth is: at H = H^ the generator gradient is not
        zero, so L_all's minimiser is not exactly the truth (tests/hcl_toy.py: starting at the
        truth, 200 steps of L_all alone move the foreground 2.8/255). That is a property of the
        paper's loss, which the reproduction reports rather than removes.
        Against CUT's code (models/patchnce.py): CUT's query is the output patch and its keys,
        positive and negatives alike, are the input's patches, detached (`feat_k.detach()`).
        Here the positive P_i comes from the ground truth, which the generator cannot move, so
        detaching it changes only the head's gradient; the negatives N_k come from H itself,
        the query set (Eq. 10-11: 'negative samples from the output harmonized foreground'),
        and the conclusion speaks of 'regularizing the negative samples to be more relative to
        the positive samples', which moves N_k: the default keeps them live. CUT's detach on
        the negatives is "detached_keys" (the key-side push, ~24 % of the generator's gradient
        in a probe, removed). tests/test_loss.py checks both against CUT's code structure.
    "truth_gated" (this repository's extension, not the paper's loss): the generator gets
        InfoNCE's pull of N_i toward P_i, and only where the output falls short of the truth.
        It departs from Eq. 10-11 in two ways. (1) A third sample set the paper never draws:
        the ground-truth foreground patches at the same cells, T_i = MLP(phi(H^ * M; S_i))
        (values only). (2) Every negative is taken out of the generator's gradient: the keys N_k
        and the denominator's query are stop-gradient copies, so the uniformity push is gone;
        the generator receives only -(1 - p_i0) P_i / tau through N_i, and only for the patches
        whose similarity to their positive is below T_i's. Per patch it minimises
            (1 - p_i0) * max(0, T_i.P_i - N_i.P_i) / tau        (1 - p_i0 held constant),
        never negative and zero, with zero gradient, at H = H^: for any head the truth minimises
        L1 + L_pixel + this term (toy drift 0.1/255). Its loss value and the head's gradient are
        exactly those of "paper" (the logged L_HCL curves cannot tell them apart); only the
        generator's objective differs (at H = H^ its gradient is 0, "paper"'s is not). Toy
        evidence (tests/hcl_toy.py): it keeps the truth stationary and closes a colour gap
        faster than no L_HCL; on the embedded default its effect is inside the seed noise
        (reports/loss_reading.html).
    "detached_keys": as "paper", but the keys N_k reach the generator as stop-gradient copies
        (MoCo-style; the head still gets their gradient). The generator receives only
        d l_i / d N_i above: the key-side push is gone, but each query is still pushed away from
        the (fixed) other foreground patches, so the truth is still not stationary (on the toy
        it even drifts further than "paper").
    "pull": as "paper", but every H-dependence of the denominator other than the positive logit
        is stop-gradient toward the generator. It receives -(1 - p_i0) P_i / tau through N_i: the
        alignment only, weighted by InfoNCE's adaptive factor; the denominator still trains the
        head (keeping it from collapsing onto one point). At the truth that pull is not zero
        unless the head embeds the true foreground and background alike, so the truth's
        foreground colour moves toward the background's (the largest drift of the readings).
    "bg_query": v^bg = N_i, v^fg = P_i: the foreground-foreground similarities are taken against
        the query that carries the background style,
            l_i = -log exp(P_i.N_i/tau) / (exp(P_i.N_i/tau) + sum_k exp(P_i.N_k/tau)),
        a softmax over the foreground patches for each background patch. The forces on the
        foreground sum to zero (sum_k d L / d N_k = 0): no pull toward the background as a
        whole. Partners are paired at random, so there is nothing to learn: the head settles at
        chance (l_i ~ log K), the gradients vanish and the truth is stationary, but the term is
        inert.

    In every reading the self term of row i and any negative at the same location as N_i (when
    sampling had to repeat locations) are left out of the denominator: N_i.N_i = 1 (or the
    positive pair itself, for bg_query) carries no information and would floor the loss at
    log 2 (CUT masks its diagonal the same way). The head gets gradients from every term.

    Images whose foreground or background has no valid cell contribute 0 (never NaN); the sum
    over images divided by the batch size stands in for the 1/N sum of Eq. 12 (so per-rank
    values average to the global one under data parallelism). Computed in fp32, autocast off.
    """
    query = HCL_QUERY_ALIASES.get(query, query)
    if query not in HCL_QUERIES:
        raise ValueError(f"loss.hcl_query must be one of {HCL_QUERIES}, got {query!r}")
    if patch_source not in PATCH_SOURCES:
        raise ValueError(f"loss.patch_source must be one of {PATCH_SOURCES}, got {patch_source!r}")
    with torch.autocast(prediction.device.type, enabled=False):
        prediction, real, mask = prediction.float(), real.float(), mask.float()
        batch, width = prediction.shape[0], prediction.shape[-1]
        grid_width = width // stride
        fg_valid, bg_valid = region_locations(mask, stride), region_locations(1 - mask, stride)
        if cells is None:
            seed = seed_tensor(seeds, batch, prediction.device)
            fg_cells, fg_any = sample_cells(fg_valid, num_patches, seed, _FG_STREAM)
            bg_cells, bg_any = sample_cells(bg_valid, num_patches, seed, _BG_STREAM)
        else:
            fg_cells, bg_cells = cells
            fg_any, bg_any = fg_valid.any(dim=1), bg_valid.any(dim=1)
        usable = fg_any & bg_any

        def crop(image: torch.Tensor, where: torch.Tensor) -> torch.Tensor:
            source, step = patch_source_image(image, stride, patch_source)
            return gather_patches(source, where, grid_width, patch_size, step)

        fg_patches = crop(prediction * mask, fg_cells)  # phi(H^fg; S_i), carries H's gradient
        positives = projection(crop(real * (1 - mask), bg_cells))  # {P_i}
        excluded = fg_cells[:, :, None] == fg_cells[:, None, :]  # self and repeated locations

        def contrast(pos_query, neg_query, keys):  # Eq. 11 per image
            return info_nce(pos_query, positives, neg_query, keys, excluded, temperature)

        if query == "truth_gated":
            frozen = projection(fg_patches.detach())  # head gradient only
            with torch.no_grad():  # the truth's own similarity to the positive, per patch
                truth = projection(crop(real * mask, fg_cells))
                below = (frozen * positives).sum(-1) < (truth * positives).sum(-1)
            pos_query = torch.where(below[..., None], projection(fg_patches), frozen)
            per_image = contrast(pos_query, frozen, frozen)
        else:
            negatives = projection(fg_patches)  # {N_k}
            if query == "paper":
                per_image = contrast(negatives, negatives, negatives)
            elif query == "bg_query":
                per_image = contrast(negatives, positives, negatives)
            else:
                frozen = projection(fg_patches.detach())  # head gradient only
                neg_query = negatives if query == "detached_keys" else frozen
                per_image = contrast(negatives, neg_query, frozen)
        return torch.where(usable, per_image, 0.0).sum() / batch
