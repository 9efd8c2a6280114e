"""The losses of Sec. III-B/C: L1, L_pixel and the region-wise contrastive L_HCL (Eq. 8-13)."""

import pytest
import torch

from regionharmony.config import LossConfig
from regionharmony.loss import (
    HarmonizationLoss,
    PatchProjection,
    crop_patches,
    pixel_loss,
    region_contrastive_loss,
    region_locations,
)


def box_mask(size: int = 64, top: int = 16, bottom: int = 48) -> torch.Tensor:
    mask = torch.zeros(1, 1, size, size)
    mask[..., top:bottom, top:bottom] = 1
    return mask


def test_pixel_loss_is_l1_inside_the_mask_only():
    pred, real, mask = torch.zeros(1, 3, 4, 4), torch.zeros(1, 3, 4, 4), torch.zeros(1, 1, 4, 4)
    mask[..., :2, :] = 1
    pred[..., :2, :] = 0.5  # error 0.5 inside
    pred[..., 2:, :] = 9.0  # large error outside must not count
    assert pixel_loss(pred, real, mask).item() == pytest.approx(0.5)
    assert pixel_loss(pred, real, torch.zeros_like(mask)).item() == 0.0


def test_patches_are_centred_on_grid_cells():
    image = torch.arange(3 * 32 * 32, dtype=torch.float32).view(1, 3, 32, 32)
    patches = crop_patches(image, 8, 4)
    assert patches.shape == (1, 64, 192)
    gy, gx = 3, 5
    expected = image[0, :, 4 * gy - 2 : 4 * gy + 6, 4 * gx - 2 : 4 * gx + 6].reshape(-1)
    assert torch.equal(patches[0, gy * 8 + gx], expected)


class Recorder(PatchProjection):
    """A projection that records every patch it embeds."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[torch.Tensor] = []

    def forward(self, patches):
        self.seen.append(patches.detach().clone())
        return super().forward(patches)


def test_only_output_foreground_and_truth_background_are_sampled():
    """Marked images: each region of output and truth carries its own value; a sampled patch may
    hold only its own region's value (or the zeros of the masked-out region)."""
    mask = box_mask()
    out = torch.where(mask.bool(), 0.25, 0.50).expand(1, 3, 64, 64)  # fg 0.25, bg 0.50
    real = torch.where(mask.bool(), 0.75, 1.00).expand(1, 3, 64, 64)  # fg 0.75, bg 1.00
    head = Recorder()
    for _ in range(5):
        region_contrastive_loss(out, real, mask, head, num_patches=32)
    negatives, positives = torch.cat(head.seen[0::2]), torch.cat(head.seen[1::2])
    assert set(negatives.unique().tolist()) <= {0.0, 0.25} and (negatives == 0.25).any()
    assert set(positives.unique().tolist()) <= {0.0, 1.00} and (positives == 1.0).any()
    # the sampled cells themselves lie wholly inside their region: no zero in the central 4x4
    centre = negatives.view(-1, 3, 8, 8)[..., 2:6, 2:6]
    assert (centre == 0.25).all()


def test_fewer_valid_locations_than_k_still_works():
    mask = torch.zeros(1, 1, 64, 64)
    mask[..., 8:16, 8:16] = 1  # 4 valid cells for K = 256
    assert region_locations(mask, 4).sum() == 4
    loss = region_contrastive_loss(
        torch.rand(1, 3, 64, 64), torch.rand(1, 3, 64, 64), mask, PatchProjection(), num_patches=256
    )
    assert torch.isfinite(loss) and loss > 0


@pytest.mark.parametrize("fill", [0.0, 1.0])
def test_an_empty_region_gives_zero_not_nan(fill):
    mask = torch.full((2, 1, 32, 32), fill)
    pred = torch.rand(2, 3, 32, 32, requires_grad=True)
    loss = region_contrastive_loss(pred, torch.rand(2, 3, 32, 32), mask, PatchProjection())
    assert loss.item() == 0.0
    terms = HarmonizationLoss(LossConfig())(pred, torch.rand(2, 3, 32, 32), mask)
    assert all(torch.isfinite(v) for v in terms.values())


def test_seeds_make_sampling_reproducible_per_image():
    pred, real, mask = (
        torch.rand(2, 3, 64, 64),
        torch.rand(2, 3, 64, 64),
        box_mask().repeat(2, 1, 1, 1),
    )
    head = PatchProjection()
    a = region_contrastive_loss(pred, real, mask, head, num_patches=16, seeds=[1, 2])
    torch.manual_seed(123)
    b = region_contrastive_loss(pred, real, mask, head, num_patches=16, seeds=[1, 2])
    assert a.item() == b.item()
    # the per-image terms split across "ranks" average to the batch value
    halves = [
        region_contrastive_loss(
            pred[i : i + 1], real[i : i + 1], mask[i : i + 1], head, num_patches=16, seeds=[i + 1]
        )
        for i in range(2)
    ]
    assert a.item() == pytest.approx(sum(h.item() for h in halves) / 2, rel=1e-6)


def test_minimising_hcl_pulls_foreground_statistics_toward_the_background():
    """Toy case: free foreground pixels, fixed background; L_HCL alone moves the foreground's
    patch statistics (mean colour) toward the ground-truth background's.

    The projection head is held fixed: the test is about the pull L_HCL exerts on the
    generator's output. (Trained jointly on this single image, the head alone can drive the loss
    down and the pixels then barely move; in training, the L1 terms and many images keep it from
    collapsing onto one image.)"""
    torch.manual_seed(0)
    mask = box_mask()
    background = torch.tensor([0.8, 0.3, 0.2])[:, None, None] + 0.05 * torch.randn(3, 64, 64)
    real = background.expand(1, 3, 64, 64)
    foreground = torch.nn.Parameter(
        torch.tensor([0.1, 0.4, 0.9])[None, :, None, None] + 0.05 * torch.randn(1, 3, 64, 64)
    )
    head = PatchProjection()
    head.requires_grad_(False)
    opt = torch.optim.Adam([foreground], lr=1e-2)

    def gap() -> float:
        fg_mean = (foreground * mask).sum(dim=(0, 2, 3)) / mask.sum()
        bg_mean = (real * (1 - mask)).sum(dim=(0, 2, 3)) / (1 - mask).sum()
        return (fg_mean - bg_mean).norm().item()

    before = gap()
    for _ in range(150):
        opt.zero_grad()
        output = foreground * mask + real * (1 - mask)
        region_contrastive_loss(output, real, mask, head, num_patches=64).backward()
        opt.step()
    assert gap() < 0.5 * before, (before, gap())


def test_hcl_gradients_are_bit_reproducible():
    """Training is repeatable only if the backward pass is: the same inputs and seeds give the
    same gradient bits, also with repeated (with-replacement) patch draws."""
    torch.manual_seed(0)
    pred, real = torch.rand(4, 3, 64, 64), torch.rand(4, 3, 64, 64)
    mask = torch.zeros(4, 1, 64, 64)
    mask[..., 8:40, 8:24] = 1  # 32 foreground cells for K = 256: many repeats
    head = PatchProjection()
    grads = []
    for _ in range(4):
        p = pred.clone().requires_grad_()
        region_contrastive_loss(p, real, mask, head, num_patches=256, seeds=[1, 2, 3, 4]).backward()
        grads.append(p.grad)
    assert all(torch.equal(g, grads[0]) for g in grads[1:])
