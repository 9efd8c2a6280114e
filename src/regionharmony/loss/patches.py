"""The patches of L_HCL (Sec. III-B, Eq. 8-9): the sampling map of cell locations, the 8x8
patches phi crops around them, the projection head, and the sampling of K cells as a pure
function of (seed, cell) computed on the device."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

_MASK32 = 0xFFFFFFFF
_FG_STREAM, _BG_STREAM = 0x3C6EF372, 0xA54FF53A  # separate draws for negatives and positives


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
