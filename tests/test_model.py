"""The network of Sec. III-A: parameter count, sizes, features, fusion blocks (Eq. 1-7)."""

import numpy as np
import pytest
import torch

from regionharmony.loss import HarmonizationLoss
from regionharmony.model.fusion import FUSION_BLOCKS, StyleFusion, make_fusion
from regionharmony.model.harmonizer import blend, build_model, count_parameters
from regionharmony.model.layers import masked_mean_std
from regionharmony.params import build_config


def trained_like(cfg):
    """A model whose zero-initialised output conv has been moved, as after training: a fresh
    model returns the composite whatever its features, which would hide any wiring fault."""
    torch.manual_seed(0)
    model = build_model(cfg)
    torch.nn.init.normal_(model.to_rgb.weight, std=0.1)
    return model


def test_paper_profile_has_the_papers_parameter_count():
    cfg = build_config("paper")
    params = count_parameters(build_model(cfg))
    assert abs(params / 1e6 - 28.37) <= 0.01, params
    head = count_parameters(HarmonizationLoss(cfg.loss))
    assert head == 192 * 256 + 256 + 256 * 256 + 256  # counted separately, not in the 28.37 M


@pytest.mark.parametrize("fusion", sorted(FUSION_BLOCKS))
def test_every_fusion_block_runs_at_odd_sizes(fusion):
    cfg = build_config("mini", variant={"model": {"fusion": fusion}})
    model = trained_like(cfg).eval()
    composite, mask = torch.rand(2, 3, 37, 50), torch.zeros(2, 1, 37, 50)
    mask[:, :, 5:20, 10:30] = 1
    out = model(composite, mask)
    assert out.shape == composite.shape
    assert torch.isfinite(out).all()


def test_unknown_fusion_is_refused():
    with pytest.raises(ValueError, match="fusion"):
        build_config("mini", variant={"model": {"fusion": "bogus"}})
    with pytest.raises(ValueError, match="bogus"):
        make_fusion("bogus", 8)


def test_features_come_from_the_same_forward_pass():
    model = trained_like(build_config("mini")).eval()
    composite, mask = torch.rand(1, 3, 64, 64), (torch.rand(1, 1, 64, 64) > 0.5).float()
    out, feats = model(composite, mask, return_features=True)
    assert torch.equal(out, model(composite, mask))
    assert not torch.equal(out, composite)
    depth = model.cfg.depth
    assert len(feats["encoder"]) == depth and len(feats["decoder"]) == depth - 1
    # decoder level j matches the encoder level of the same resolution (Fig. 1)
    for dec, enc in zip(feats["decoder"], feats["encoder"][-2::-1], strict=True):
        assert dec.shape == enc.shape


def test_masked_statistics_match_numpy():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 3, 8, 9)).astype(np.float32)
    m = (rng.random((2, 1, 8, 9)) > 0.6).astype(np.float32)
    mean, std = masked_mean_std(torch.from_numpy(x), torch.from_numpy(m))
    for b in range(2):
        sel = m[b, 0] > 0
        for c in range(3):
            values = x[b, c][sel]
            assert mean[b, c, 0, 0].item() == pytest.approx(values.mean(), abs=1e-4)
            ref = np.sqrt(values.var() * sel.sum() / (sel.sum() + 1e-5) + 1e-5)
            assert std[b, c, 0, 0].item() == pytest.approx(ref, abs=1e-4)


def test_empty_region_statistics_are_identity_not_nan():
    x = torch.randn(1, 4, 6, 6)
    mean, std = masked_mean_std(x, torch.zeros(1, 1, 6, 6))
    assert torch.equal(mean, torch.zeros_like(mean)) and torch.equal(std, torch.ones_like(std))


def test_zero_initialised_style_fusion_affine_is_identity():
    """With gamma = beta = 0 the fused map is exactly Eq. 4 inside and Eq. 5 outside the mask."""
    fusion = StyleFusion(5)
    d, e = torch.randn(2, 5, 8, 8), torch.randn(2, 5, 8, 8) * 3 + 1
    mask = torch.zeros(2, 1, 8, 8)
    mask[:, :, 2:6, 2:6] = 1
    mu_e, sigma_e = masked_mean_std(e, 1 - mask)
    mu_d, sigma_d = masked_mean_std(d, 1 - mask)
    expected = (d - mu_e) / sigma_e * mask + (d - mu_d) / sigma_d * (1 - mask)
    torch.testing.assert_close(fusion(d, e, mask), expected)
    x = torch.randn(2, 5, 3, 3)
    assert torch.equal(fusion.affine_fg(x), x) and torch.equal(fusion.affine_bg(x), x)


@pytest.mark.parametrize("fill", [0.0, 1.0])
@pytest.mark.parametrize("fusion", sorted(FUSION_BLOCKS))
def test_all_foreground_and_all_background_masks_are_finite(fill, fusion):
    cfg = build_config("mini", variant={"model": {"fusion": fusion}})
    model, criterion = trained_like(cfg), HarmonizationLoss(cfg.loss)
    composite, real = torch.rand(2, 3, 64, 64), torch.rand(2, 3, 64, 64)
    mask = torch.full((2, 1, 64, 64), fill)
    out = model(composite, mask)
    terms = criterion(out, real, mask)
    assert torch.isfinite(out).all()
    assert all(torch.isfinite(v) for v in terms.values())
    terms["total"].backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert len(grads) > 0.9 * len(list(model.parameters()))
    assert all(torch.isfinite(g).all() for g in grads)


def test_gradients_reach_every_parameter_including_the_contrastive_head():
    # the paper profile (at 64 px to stay fast): the mini profile's 2-unit attention MLPs can
    # have every ReLU unit dead for a given input, which says nothing about the wiring
    torch.manual_seed(0)
    cfg = build_config("paper")
    model, criterion = build_model(cfg), HarmonizationLoss(cfg.loss)
    params = list(model.parameters()) + list(criterion.parameters())
    optimizer = torch.optim.AdamW(params, lr=cfg.train.lr)
    composite, real = torch.rand(2, 3, 64, 64), torch.rand(2, 3, 64, 64)
    mask = torch.zeros(2, 1, 64, 64)
    mask[:, :, 16:48, 8:40] = 1
    # the output conv starts at zero (H = I'), so the first step only moves it; from the
    # second step on every parameter must receive a gradient
    for _ in range(2):
        optimizer.zero_grad()
        criterion(model(composite, mask), real, mask)["total"].backward()
        named = list(model.named_parameters()) + list(criterion.named_parameters())
        optimizer.step()
    missing = [n for n, p in named if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing, missing
    assert any(n.startswith("projection") for n, _ in criterion.named_parameters())


def test_a_fresh_model_is_the_identity_on_the_composite():
    model = build_model(build_config("mini")).eval()
    composite, mask = torch.rand(1, 3, 48, 48), (torch.rand(1, 1, 48, 48) > 0.5).float()
    assert torch.equal(model(composite, mask), composite)


def test_blend_keeps_the_background_of_the_composite():
    composite, pred = torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8) * 2 - 0.5
    mask = torch.zeros(1, 1, 8, 8)
    mask[..., :4, :] = 1
    out = blend(pred, composite, mask)
    assert torch.equal(out[..., 4:, :], composite[..., 4:, :])
    assert out.min() >= 0 and out.max() <= 1
