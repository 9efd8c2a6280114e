"""L_HCL's patches and their sampling: crops centred on grid cells, only the output's
foreground and the truth's background, and draws that are a pure, uniform function of the
seed and the mask."""

from __future__ import annotations

import pytest
import torch
from loss_helpers import box_mask, mixed_batch

from regionharmony.config import LossConfig
from regionharmony.loss import (
    HCL_QUERIES,
    HarmonizationLoss,
    PatchProjection,
    crop_patches,
    gather_patches,
    region_contrastive_loss,
    region_locations,
    sample_cells,
)
from regionharmony.loss.patches import _BG_STREAM, _FG_STREAM, _hash32, _mul32

# -- patches -----------------------------------------------------------------------------------


def test_patches_are_centred_on_grid_cells():
    image = torch.arange(3 * 32 * 32, dtype=torch.float32).view(1, 3, 32, 32)
    patches = crop_patches(image, 8, 4)
    assert patches.shape == (1, 64, 192)
    gy, gx = 3, 5
    expected = image[0, :, 4 * gy - 2 : 4 * gy + 6, 4 * gx - 2 : 4 * gx + 6].reshape(-1)
    assert torch.equal(patches[0, gy * 8 + gx], expected)


@pytest.mark.parametrize("step", [4, 1])
def test_gathered_patches_equal_the_dense_crops(step):
    """The batched crop of the sampled cells only equals the dense crop of every cell, also at
    the border and with a step of 1 (the sampling-map source, where an 8x8 patch is not centred:
    3 cells before, 4 after)."""
    image = torch.rand(2, 3, 16, 20)
    grid_w, cells_total = 20 // step, (16 // step) * (20 // step)
    cells = torch.stack([torch.randperm(cells_total)[:7], torch.randint(cells_total, (7,))])
    dense = crop_patches(image, 8, step)
    expected = torch.stack([dense[b].index_select(0, cells[b]) for b in range(2)])
    assert torch.equal(gather_patches(image, cells, grid_w, 8, step), expected)


class Recorder(PatchProjection):
    """A projection that records every patch it embeds."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[torch.Tensor] = []

    def forward(self, patches):
        self.seen.append(patches.detach().reshape(-1, patches.shape[-1]).clone())
        return super().forward(patches)


@pytest.mark.parametrize("query", HCL_QUERIES)
def test_only_output_foreground_and_truth_background_are_sampled(query):
    """Marked images: each region of output and truth carries its own value. The samples hold
    only the output's foreground value or the truth's background value (or the zeros of the
    masked-out region); truth_gated also embeds the truth's foreground, as a reference only."""
    mask = box_mask()
    out = torch.where(mask.bool(), 0.25, 0.50).expand(1, 3, 64, 64)  # fg 0.25, bg 0.50
    real = torch.where(mask.bool(), 0.75, 1.00).expand(1, 3, 64, 64)  # fg 0.75, bg 1.00
    head = Recorder()
    for seed in range(3):
        region_contrastive_loss(out, real, mask, head, 32, seeds=[seed], query=query)
    values = {v for patches in head.seen for v in patches.unique().tolist()}
    allowed = {0.0, 0.25, 1.0} | ({0.75} if query == "truth_gated" else set())
    assert values <= allowed and {0.25, 1.0} <= values
    # the sampled cells themselves lie wholly inside their region: no zero in the central 4x4
    negatives = torch.cat([p for p in head.seen if (p == 0.25).any()])
    assert (negatives.view(-1, 3, 8, 8)[..., 2:6, 2:6] == 0.25).all()


# -- sampling ----------------------------------------------------------------------------------


def test_mul32_and_hash32_are_exact_32_bit_arithmetic():
    """The int64 implementation equals Python's unbounded integers taken mod 2**32, and the hash
    equals a plain Python lowbias32 (so no int64 overflow or sign issue can change a draw)."""

    def lowbias32(x: int) -> int:
        x ^= x >> 16
        x = (x * 0x7FEB352D) & 0xFFFFFFFF
        x ^= x >> 15
        x = (x * 0x846CA68B) & 0xFFFFFFFF
        return x ^ (x >> 16)

    values = [0, 1, 2**16 - 1, 2**16, 2**31, 2**32 - 1, 123456789, 3735928559]
    x = torch.tensor(values, dtype=torch.int64)
    assert _mul32(x, 0x846CA68B).tolist() == [(v * 0x846CA68B) % 2**32 for v in values]
    assert _hash32(x).tolist() == [lowbias32(v) for v in values]


def test_sampling_is_a_pure_function_of_the_seed_and_the_mask():
    """The cells of an image depend on its seed and valid cells only: not on the other images of
    the batch, their order, or the global RNG; another seed gives other cells."""
    _, _, mask = mixed_batch()
    valid = region_locations(mask, 4)
    seeds = torch.tensor([5, 6, 7, 2**62 + 1])
    cells, _ = sample_cells(valid, 64, seeds, _FG_STREAM)
    torch.manual_seed(123)
    flipped, _ = sample_cells(valid.flip(0), 64, seeds.flip(0), _FG_STREAM)
    assert torch.equal(flipped.flip(0), cells)
    alone, _ = sample_cells(valid[:1], 64, seeds[:1], _FG_STREAM)
    assert torch.equal(alone[0], cells[0])
    other, _ = sample_cells(valid[:1], 64, torch.tensor([8]), _FG_STREAM)
    assert not torch.equal(other[0], cells[0])
    bg, _ = sample_cells(valid[:1], 64, seeds[:1], _BG_STREAM)  # the streams are independent
    assert not torch.equal(bg[0], cells[0])


def test_sampling_is_uniform_over_the_valid_cells():
    """Over many seeds, each of 64 valid cells is drawn about K/64 of the time, never an invalid
    one, and without replacement when there are at least K cells."""
    valid = region_locations(box_mask(), 4).expand(2000, -1)
    cells, any_valid = sample_cells(valid, 16, torch.arange(2000), _FG_STREAM)
    assert any_valid.all() and valid[0, cells].all()
    assert all(len(set(row)) == 16 for row in cells.tolist())
    counts = torch.bincount(cells.flatten(), minlength=valid.shape[1])[valid[0]].float()
    expected = 2000 * 16 / 64
    assert ((counts - expected).abs() < 5 * expected**0.5).all()  # 5 sigma, binomial


def test_fewer_valid_locations_than_k_repeats_each_cell_evenly():
    mask = torch.zeros(1, 1, 64, 64)
    mask[..., 8:16, 8:16] = 1  # 4 valid cells for K = 256
    valid = region_locations(mask, 4)
    assert valid.sum() == 4
    cells, any_valid = sample_cells(valid, 256, torch.tensor([3]), _FG_STREAM)
    assert any_valid.all() and valid[0, cells[0]].all()
    counts = torch.bincount(cells[0], minlength=valid.shape[1])
    assert counts.max() == counts[valid[0]].min() == 64
    loss = region_contrastive_loss(
        torch.rand(1, 3, 64, 64), torch.rand(1, 3, 64, 64), mask, PatchProjection(), 256
    )
    assert torch.isfinite(loss) and loss > 0


@pytest.mark.parametrize("query", HCL_QUERIES)
@pytest.mark.parametrize("fill", [0.0, 1.0])
def test_an_empty_region_gives_zero_not_nan(query, fill):
    """No valid cell in one region: the image contributes 0, the gradient is finite and every
    head parameter still gets one (data-parallel training requires it)."""
    mask = torch.full((2, 1, 32, 32), fill)
    pred = torch.rand(2, 3, 32, 32, requires_grad=True)
    criterion = HarmonizationLoss(LossConfig(hcl_query=query))
    terms = criterion(pred, torch.rand(2, 3, 32, 32), mask)
    assert terms["hcl"].item() == 0.0
    assert all(torch.isfinite(v) for v in terms.values())
    terms["total"].backward()
    assert torch.isfinite(pred.grad).all()
    assert all(p.grad is not None for p in criterion.parameters())


def test_seeds_make_sampling_reproducible_per_image():
    pred, real, mask = (
        torch.rand(2, 3, 64, 64),
        torch.rand(2, 3, 64, 64),
        box_mask().repeat(2, 1, 1, 1),
    )
    head = PatchProjection()
    a = region_contrastive_loss(pred, real, mask, head, 16, seeds=[1, 2])
    torch.manual_seed(123)
    b = region_contrastive_loss(pred, real, mask, head, 16, seeds=torch.tensor([1, 2]))
    assert a.item() == b.item()  # a list and a tensor are the same seeds; global RNG unused
    # the per-image terms split across "ranks" average to the batch value
    halves = [
        region_contrastive_loss(
            pred[i : i + 1], real[i : i + 1], mask[i : i + 1], head, 16, seeds=[i + 1]
        )
        for i in range(2)
    ]
    assert a.item() == pytest.approx(sum(h.item() for h in halves) / 2, rel=1e-6)
    with pytest.raises(ValueError, match="one seed per image"):
        region_contrastive_loss(pred, real, mask, head, 16, seeds=[1])
