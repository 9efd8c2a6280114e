"""The losses of Sec. III-B and III-C: L1, L_pixel and the region-wise contrastive L_HCL.

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
import torch.nn.functional as F
from torch import nn

from regionharmony.config import LossConfig

# How Eq. 10-11's undefined queries v^fg, v^bg are read; see region_contrastive_loss.
HCL_QUERIES = ("shared", "detached_keys", "pull", "bg_query", "truth_gated")
# Where phi of Eq. 8-9 crops its 8x8 patches; see region_contrastive_loss.
PATCH_SOURCES = ("image", "sampling_map")

_MASK32 = 0xFFFFFFFF
_FG_STREAM, _BG_STREAM = 0x3C6EF372, 0xA54FF53A  # separate draws for negatives and positives


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


class PatchProjection(nn.Module):
    """The shared two-layer MLP of Fig. 2 (CUT's PatchSampleF): 8*8*3 -> 256 -> 256, L2-normed."""

    def __init__(self, in_features: int = 192, hidden: int = 256, out: int = 256) -> None:
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Linear(in_features, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, out)
        )

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.mlp(patches), dim=-1)


# -- the sampling map and the patches ---------------------------------------------------------


def region_locations(mask: torch.Tensor, stride: int) -> torch.Tensor:
    """The sampling map S: cells of `stride` x `stride` pixels lying entirely inside `mask`.

    Returns a bool tensor (B, H // stride * W // stride), one entry per cell of the 1/stride grid.
    """
    inside = F.avg_pool2d(mask.float(), stride, stride) >= 1.0 - 1e-6
    return inside.flatten(1)


def _patch_padding(patch_size: int, step: int) -> tuple[int, int]:
    """Padding before/after each axis so that the patch of cell c spans
    [c*step - before, c*step - before + patch_size): centred on the cell's `step` pixels."""
    before = (patch_size - step) // 2
    return before, patch_size - step - before


def crop_patches(image: torch.Tensor, patch_size: int, stride: int) -> torch.Tensor:
    """phi of Eq. 8-9 at every cell: the patch_size x patch_size patch around each cell of the
    1/stride grid. Returns (B, L, C * patch_size**2), L the number of cells, in
    region_locations' order; pixels beyond the border are zero. (The batched loss crops only
    the sampled cells with `gather_patches`; this dense form is the reference.)"""
    before, after = _patch_padding(patch_size, stride)
    cols = F.unfold(F.pad(image, (before, after, before, after)), patch_size, stride=stride)
    return cols.transpose(1, 2)


def patch_source_image(
    image: torch.Tensor, stride: int, patch_source: str
) -> tuple[torch.Tensor, int]:
    """The image phi crops from, and the pixel step between neighbouring cells in it.

    "image": the full-resolution (masked) image, cells `stride` pixels apart (Eq. 8's
    phi(H^fg; S_i)). "sampling_map": the sampling map S itself, i.e. the masked image averaged
    over each cell, cells 1 pixel apart (the text's "crop 8x8 patches around the negative
    locations in S^fg"); an 8x8 patch then spans 8*stride image pixels.
    """
    if patch_source == "image":
        return image, stride
    return F.avg_pool2d(image, stride, stride), 1


def gather_patches(
    source: torch.Tensor, cells: torch.Tensor, grid_width: int, patch_size: int, step: int
) -> torch.Tensor:
    """The patches around the given cells, for the whole batch in one index_select.

    `source` (B, C, H, W), `cells` (B, K) flat cell indices of the grid whose cells lie `step`
    pixels apart. Returns (B, K, C * patch_size**2), the values in crop_patches' order (channel,
    row, column). index_select (not gather or fancy indexing) because its CPU backward adds
    repeated rows in a fixed order, which keeps training bit-reproducible on the CPU.
    """
    b, c, h, w = source.shape
    before, after = _patch_padding(patch_size, step)
    padded = F.pad(source, (before, after, before, after))
    hp, wp = h + before + after, w + before + after
    rows = (cells // grid_width) * step  # top-left corner of each patch in the padded image
    cols = (cells % grid_width) * step
    offsets = torch.arange(patch_size, device=cells.device)
    pixel = (rows[..., None, None] + offsets[:, None]) * wp + (cols[..., None, None] + offsets)
    batch_offset = torch.arange(b, device=cells.device).view(b, 1, 1, 1) * (hp * wp)
    flat = (pixel + batch_offset).reshape(-1)  # (B * K * ps * ps)
    pixels = padded.permute(0, 2, 3, 1).reshape(b * hp * wp, c).index_select(0, flat)
    k = cells.shape[1]
    return pixels.view(b, k, patch_size * patch_size, c).transpose(2, 3).reshape(b, k, -1)


# -- sampling: a pure function of (seed, cell), computed on the device --------------------------


def _mul32(x: torch.Tensor, constant: int) -> torch.Tensor:
    """x * constant mod 2**32 for int64 x in [0, 2**32), without any int64 overflow: the
    product is split into 16-bit halves (each partial product stays below 2**49)."""
    low = (x & 0xFFFF) * constant
    high = (((x >> 16) * constant) & 0xFFFF) << 16
    return (low + high) & _MASK32


def _hash32(x: torch.Tensor) -> torch.Tensor:
    """Chris Wellons' "lowbias32" integer hash: a bijection of [0, 2**32) with near-ideal
    avalanche, evaluated exactly in int64 arithmetic (identical on every device)."""
    x = x ^ (x >> 16)
    x = _mul32(x, 0x7FEB352D)
    x = x ^ (x >> 15)
    x = _mul32(x, 0x846CA68B)
    return x ^ (x >> 16)


def cell_scores(seeds: torch.Tensor, num_cells: int, stream: int) -> torch.Tensor:
    """Random scores (B, num_cells) in [0, 2**32): a counter-based hash of (seed, stream, cell).

    The 64 seed bits and the stream constant are folded into two 32-bit keys; a cell's score is
    hash(hash(cell + key1) ^ key2). For one key the map cell -> score is a bijection, so the
    scores of one image never tie and their order is the same on every device and backend.
    """
    seeds = seeds.to(torch.int64)
    low, high = seeds & _MASK32, (seeds >> 32) & _MASK32
    key1 = _hash32(_hash32(low ^ stream) ^ high)
    key2 = _hash32(key1 ^ (stream ^ 0x9E3779B9))
    cells = torch.arange(num_cells, device=seeds.device, dtype=torch.int64)
    return _hash32(_hash32((cells + key1[:, None]) & _MASK32) ^ key2[:, None])


def sample_cells(
    valid: torch.Tensor, k: int, seeds: torch.Tensor, stream: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """K cells of each image among its valid ones; a pure function of (seed, stream, valid).

    The valid cells are ranked by their `cell_scores` (a random permutation); the first K are
    taken when there are at least K (sampling without replacement), otherwise the permutation is
    repeated cyclically: draw j is cell number (j mod n_valid) of the ranking, so every valid cell
    appears floor(K / n) or ceil(K / n) times (sampling with repetition, balanced, instead of i.i.d.
    draws). Returns the cell indices (B, K) and whether the image has any valid cell (B,); the
    indices of an image without one are meaningless (its loss is masked out).
    """
    scores = cell_scores(seeds, valid.shape[1], stream).masked_fill(~valid, -1)
    ranked = scores.topk(min(k, valid.shape[1]), dim=1).indices  # distinct scores: no ties
    count = valid.sum(dim=1)
    draw = torch.arange(k, device=valid.device) % count.clamp_min(1)[:, None]
    return ranked.gather(1, draw), count > 0


def seed_tensor(
    seeds: Sequence[int] | torch.Tensor | None, batch: int, device: torch.device
) -> torch.Tensor:
    """Per-image seeds as a (B,) int64 tensor on `device`. A list or CPU tensor is copied without
    waiting for the device; None draws fresh seeds from the global torch RNG of `device`."""
    if seeds is None:
        return torch.randint(0, 2**62, (batch,), device=device)
    seeds = torch.as_tensor(seeds, dtype=torch.int64)
    if seeds.shape != (batch,):
        raise ValueError(f"seeds must hold one seed per image ({batch}), got shape {seeds.shape}")
    return seeds.to(device, non_blocking=True)


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
    query: str = "truth_gated",
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
    location S_i, and DESIGN.md reads it on the full-resolution image: an 8x8 patch centred on
    the 4x4 pixels of the cell ("image", the default). The text says "crop 8x8 patches around
    the negative locations in S^fg", the 1/4 sampling map itself; "sampling_map" does that (each
    patch then covers 32x32 image pixels at 1/4 resolution; the text's argument against a 1/8 map,
    that the 8x8 patches would overlap more, fits this reading better than the image one).

    Queries (`query`). Eq. 10-11 use a query v^bg against the positive and a query v^fg against
    the negatives and define neither. Writing p_i0 for the softmax weight of the positive logit
    of row i and p_ik for that of negative k, the readings are:

    "shared" (the reading of earlier versions, same formula): v^bg = v^fg = N_i, the embedding
        of the i-th harmonised-foreground patch, negatives the other N_k:
            l_i = -log exp(N_i.P_i/tau) / (exp(N_i.P_i/tau) + sum_k exp(N_i.N_k/tau)).
        d l_i / d N_i = (-(1 - p_i0) P_i + sum_k p_ik N_k) / tau and d l_i / d N_k = p_ik N_i / tau:
        it rewards each foreground patch for resembling its background partner (alignment) and
        for differing from the other foreground patches (uniformity). The second part makes the
        foreground more varied whatever the truth is: at H = H^ the generator gradient is not
        zero and on textured images exceeds what L1's dead zone absorbs, so the truth drifts
        (its colour spread grows).
    "detached_keys": as "shared", but the keys N_k reach the generator as stop-gradient copies
        (MoCo-style; the head still gets their gradient). The generator receives only
        d l_i / d N_i above: the key-side push is gone, but each query is still pushed away from
        the (fixed) other foreground patches, so the truth is still not stationary (on the toy
        of tests/hcl_toy.py it even drifts further than "shared").
    "pull": as "shared", but every H-dependence of the denominator other than the positive logit
        is stop-gradient toward the generator. It receives -(1 - p_i0) P_i / tau through N_i: the
        alignment only, weighted by InfoNCE's adaptive factor; the denominator still trains the
        head (keeping it from collapsing onto one point). It rewards a foreground that looks
        like the background in the head's embedding; at the truth that pull is not zero unless
        the head embeds the true foreground and background alike, so the truth's foreground
        colour moves toward the background's (the largest drift of the readings).
    "bg_query": v^bg = N_i, v^fg = P_i: the foreground-foreground similarities are taken against
        the query that carries the background style,
            l_i = -log exp(P_i.N_i/tau) / (exp(P_i.N_i/tau) + sum_k exp(P_i.N_k/tau)),
        a softmax over the foreground patches for each background patch. The forces on the
        foreground sum to zero (sum_k d L / d N_k = 0): no pull toward the background as a
        whole, only a reward for each background patch resembling its own partner more than the
        other foreground patches. Partners are paired at random, so there is nothing to learn:
        the head settles at chance (l_i ~ log K), the gradients vanish and the truth is
        stationary, but the term is inert.
    "truth_gated" (default): "pull", applied only where the output falls short of the truth.
        The generator receives the pull -(1 - p_i0) P_i / tau through N_i only for the patches
        whose similarity to their positive is below that of the true foreground patch at the
        same location, T_i = MLP(phi(H^ * M; S_i)) (values only): it minimises, per patch,
            (1 - p_i0) * max(0, T_i.P_i - N_i.P_i) / tau        (1 - p_i0 held constant),
        which is never negative and is zero, with zero gradient, at H = H^: for any head the
        truth minimises L1 + L_pixel + this term, and is stationary exactly. The loss value and
        the head's training are those of "shared". It rewards each foreground patch for being
        at least as close to its background partner as the truth's patch is, and nothing beyond:
        the paper's pull toward the background style, bounded by the truth. It departs from the
        text by using the true foreground as a stop-gradient reference level, not as a sample
        of Eq. 10.

    In every reading the self term of row i and any negative at the same location as N_i (when
    sampling had to repeat locations) are left out of the denominator: N_i.N_i = 1 (or the
    positive pair itself, for bg_query) carries no information and would floor the loss at
    log 2 (CUT masks its diagonal the same way). The head gets gradients from every term.

    Images whose foreground or background has no valid cell contribute 0 (never NaN); the sum
    over images divided by the batch size stands in for the 1/N sum of Eq. 12 (so per-rank
    values average to the global one under data parallelism). Computed in fp32, autocast off.
    """
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
            if query == "shared":
                per_image = contrast(negatives, negatives, negatives)
            elif query == "bg_query":
                per_image = contrast(negatives, positives, negatives)
            else:
                frozen = projection(fg_patches.detach())  # head gradient only
                neg_query = negatives if query == "detached_keys" else frozen
                per_image = contrast(negatives, neg_query, frozen)
        return torch.where(usable, per_image, 0.0).sum() / batch


class HarmonizationLoss(nn.Module):
    """L_all of Eq. 13. Holds the contrastive head (created up front when lambda_3 > 0).

    Call it as `loss(prediction, real, mask, seeds)`; `seeds` are the per-image sampling seeds,
    a (B,) int64 tensor (any device; preferred: no recompilation under torch.compile) or a list
    of ints, or None for the global RNG. Returns the terms and "total", all fp32 scalars.
    """

    def __init__(self, cfg: LossConfig) -> None:
        super().__init__()
        if cfg.hcl_query not in HCL_QUERIES:
            raise ValueError(f"loss.hcl_query must be one of {HCL_QUERIES}, got {cfg.hcl_query!r}")
        if cfg.patch_source not in PATCH_SOURCES:
            raise ValueError(
                f"loss.patch_source must be one of {PATCH_SOURCES}, got {cfg.patch_source!r}"
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
