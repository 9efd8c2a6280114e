"""Metrics of docs/evaluation.md, 'The protocol' against plain numpy references and scikit-image."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.ndimage import correlate, gaussian_filter
from skimage.metrics import mean_squared_error, peak_signal_noise_ratio, structural_similarity

from regionharmony.evaluation.metrics import (
    aggregate,
    fg_bin,
    fmse,
    fssim,
    gaussian_window,
    iih_ssim_map,
    image_metrics,
    masked_map_mean,
    mse,
    psnr,
    seed_summary,
    ssim,
    ssim_map,
)


@pytest.fixture
def images():
    rng = np.random.default_rng(0)
    target = rng.integers(0, 256, (48, 40, 3)).astype(np.float64)
    pred = np.clip(target + rng.normal(0, 12, target.shape), 0, 255).round()
    mask = np.zeros((48, 40), bool)
    mask[10:30, 5:22] = True
    pred[mask] = np.clip(pred[mask] * 0.7 + 30, 0, 255)  # a recoloured foreground
    return pred, target, mask


def reference_ssim_map(pred, target, c1, c2, border="reflect"):
    """Wang et al. 2004 with an 11x11 Gaussian (sigma 1.5), per channel; `border` "reflect"
    (scikit-image) or "constant" (zero padding, IIH's pytorch_ssim conv2d)."""

    def blur(x):
        return np.stack(
            [gaussian_filter(x[..., c], 1.5, truncate=3.5, mode=border) for c in range(3)], -1
        )

    mx, my = blur(pred), blur(target)
    vx, vy = blur(pred * pred) - mx * mx, blur(target * target) - my * my
    cov = blur(pred * target) - mx * my
    return ((2 * mx * my + c1) * (2 * cov + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))


def correlate_2d_ssim_map(pred, target):
    """`iih_ssim_map` as it was before it became separable: an 11 x 11 2-D correlate per
    channel, zero padding (scipy sums the 121 products in order for each pixel)."""
    window = gaussian_window()

    def blur(x):
        return np.stack(
            [correlate(x[..., c], window, mode="constant") for c in range(x.shape[-1])], -1
        )

    c1, c2 = 0.01**2, 0.03**2
    mu_p, mu_t = blur(pred), blur(target)
    var_p = blur(pred * pred) - mu_p**2
    var_t = blur(target * target) - mu_t**2
    cov = blur(pred * target) - mu_p * mu_t
    return ((2 * mu_p * mu_t + c1) * (2 * cov + c2)) / (
        (mu_p**2 + mu_t**2 + c1) * (var_p + var_t + c2)
    )


def random_pair(rng, height, width, flat=False):
    """8-bit-valued float images; with `flat`, saturated and constant patches, where the
    variances are pure rounding noise against IIH's C2 = 0.0009 and the two summation orders
    differ most."""
    target = rng.integers(0, 256, (height, width, 3)).astype(np.float64)
    pred = np.clip(target + rng.normal(0, 12, target.shape), 0, 255).round()
    if flat:
        target[: height // 2, : width // 2] = pred[: height // 2, : width // 2] = 255
        target[height // 2 :, width // 2 :] = 17
        pred[height // 2 :, width // 2 :] = 18
    return pred, target


# The separable SSIM equals the 2-D correlate up to float64 rounding, not bit for bit (the sums
# run in another order). Where a window is flat, the variances are rounding noise (~1e-11 for
# values near 255) divided by IIH's C2 = 0.0009, so a map value may move by ~1e-8 there. On the
# 64 test pairs of the embedded dataset the maps differed by at most 1.7e-8 at 256 px (SSIM /
# fSSIM by 1.9e-12 / 7.6e-12) and 1.5e-7 at 1024 px (upscaled: large flat areas; 3.3e-11 /
# 1.4e-10).
MAP_TOLERANCE, MEAN_TOLERANCE = 1e-6, 1e-10


@pytest.mark.parametrize(
    ("height", "width", "flat"),
    [(11, 11, False), (48, 40, False), (37, 64, True), (130, 97, True), (256, 256, True)],
)
def test_separable_iih_ssim_equals_the_2d_correlate(height, width, flat):
    rng = np.random.default_rng(height * width)
    pred, target = random_pair(rng, height, width, flat)
    mask = np.zeros((height, width), bool)
    mask[height // 4 : 3 * height // 4, width // 3 :] = True
    full = iih_ssim_map(pred, target)
    reference = correlate_2d_ssim_map(pred, target)
    assert full.shape == reference.shape and full.dtype == np.float64
    assert full.flags.c_contiguous
    np.testing.assert_allclose(full, reference, rtol=0, atol=MAP_TOLERANCE)
    if not flat:  # away from flat regions, a few units in the last place
        np.testing.assert_allclose(full, reference, rtol=0, atol=1e-12)
    value, from_map = ssim_map(pred, target, "iih")
    assert np.array_equal(from_map, full)
    # a mean over a flat area keeps its map values' error
    tolerance = MAP_TOLERANCE if flat else MEAN_TOLERANCE
    assert value == pytest.approx(reference.mean(), rel=0, abs=tolerance)
    assert fssim(pred, target, mask) == pytest.approx(
        masked_map_mean(reference, mask), rel=0, abs=tolerance
    )


def test_separable_ssim_is_deterministic_and_per_image(images):
    pred, target, _ = images
    first = iih_ssim_map(pred, target)
    assert np.array_equal(iih_ssim_map(pred.copy(), target.copy()), first)
    # a non-contiguous view of the same values gives the same bits
    wide = np.zeros((pred.shape[0], pred.shape[1] * 2, 3))
    wide[:, ::2] = pred
    assert np.array_equal(iih_ssim_map(wide[:, ::2], target), first)


def test_mse_and_fmse_against_numpy(images):
    pred, target, mask = images
    assert mse(pred, target) == pytest.approx(np.mean((pred - target) ** 2), abs=1e-9)
    total = sum(
        (pred[y, x, c] - target[y, x, c]) ** 2
        for y, x in zip(*np.nonzero(mask), strict=True)
        for c in range(3)
    )
    assert fmse(pred, target, mask) == pytest.approx(total / (3 * mask.sum()), rel=1e-12)


def test_definitions_coincide_with_scikit_image(images):
    pred, target, _ = images
    ones = np.ones(target.shape[:2], bool)
    assert abs(mse(pred, target) - mean_squared_error(target, pred)) < 1e-6
    assert abs(fmse(pred, target, ones) - mse(pred, target)) < 1e-6
    reference = peak_signal_noise_ratio(target, pred, data_range=255)
    assert abs(psnr(pred, target, "255") - reference) < 1e-6
    standard = structural_similarity(
        target,
        pred,
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        data_range=255,
        channel_axis=-1,
    )
    assert abs(ssim(pred, target, "standard") - standard) < 1e-6


def test_psnr_data_ranges(images):
    pred, target, _ = images
    err = np.mean((pred - target) ** 2)
    official = 10 * np.log10((pred.max() - pred.min()) ** 2 / err)
    assert psnr(pred, target) == pytest.approx(official, abs=1e-9)  # the default
    assert psnr(pred, target, "target") == pytest.approx(
        10 * np.log10(target.max() ** 2 / err), abs=1e-9
    )
    assert psnr(target, target) == float("inf")
    with pytest.raises(ValueError, match="data range"):
        psnr(pred, target, "1")


@pytest.mark.parametrize(
    ("mode", "c1", "c2", "border", "crop"),
    [("standard", 6.5025, 58.5225, "reflect", 5), ("iih", 1e-4, 9e-4, "constant", 0)],
)
def test_ssim_map_matches_a_numpy_reference(images, mode, c1, c2, border, crop):
    pred, target, mask = images
    value, full = ssim_map(pred, target, mode)
    reference = reference_ssim_map(pred, target, c1, c2, border)
    np.testing.assert_allclose(full, reference, atol=1e-6)
    # SSIM: scikit-image leaves the 5-pixel border strip out of the mean, IIH averages it all
    inner = reference[crop : reference.shape[0] - crop, crop : reference.shape[1] - crop]
    assert value == pytest.approx(inner.mean(), abs=1e-6)
    # fSSIM: the full map over the foreground of each channel, then over channels
    per_channel = [reference[..., c][mask].mean() for c in range(3)]
    assert fssim(pred, target, mask, mode) == pytest.approx(np.mean(per_channel), abs=1e-6)


def test_iih_mode_differs_from_standard_and_perfect_scores_are_one(images):
    pred, target, mask = images
    # on faint texture the constants dominate: (0.03*255)^2 = 58.5 against 0.03^2
    rng = np.random.default_rng(1)
    faint = 100 + rng.normal(0, 1, (32, 32, 3))
    noisy = faint + rng.normal(0, 1, faint.shape)
    assert ssim(noisy, faint, "standard") > 0.9 > ssim(noisy, faint, "iih")
    assert ssim(target, target) == pytest.approx(1.0)
    assert fssim(target, target, mask) == pytest.approx(1.0)
    ones = np.ones(mask.shape, bool)
    assert fssim(pred, target, ones) == pytest.approx(ssim_map(pred, target)[1].mean(), abs=1e-9)


def test_foreground_metrics_refuse_an_empty_mask(images):
    pred, target, mask = images
    with pytest.raises(ValueError, match="empty foreground"):
        fmse(pred, target, np.zeros_like(mask))
    with pytest.raises(ValueError, match="shape"):
        fmse(pred, target, mask[1:])


def test_image_metrics_bundle_every_metric(images):
    pred, target, mask = images
    scores = image_metrics(pred, target, mask, psnr_range="255", ssim_mode="standard")
    assert scores["fg_ratio"] == pytest.approx(mask.mean())
    assert scores["fmse"] == fmse(pred, target, mask)
    assert scores["psnr"] == psnr(pred, target, "255")
    assert scores["fssim"] == pytest.approx(fssim(pred, target, mask, "standard"))


def test_foreground_ratio_bins():
    assert [fg_bin(r) for r in (0, 0.0499, 0.05, 0.1499, 0.15, 1.0)] == [
        "0-5",
        "0-5",
        "5-15",
        "5-15",
        "15-100",
        "15-100",
    ]


def test_aggregation_is_image_weighted():
    frame = pd.DataFrame(
        {
            "subset": ["HAdobe5k", "HCOCO", "HCOCO", "HCOCO"],
            "name": list("abcd"),
            "fg_ratio": [0.01, 0.1, 0.2, 0.3],
            "mse": [100.0, 10.0, 20.0, 30.0],
            "psnr": [30.0, 40.0, 40.0, 40.0],
            "fmse": [1.0, 2.0, 3.0, 4.0],
            "ssim": [0.5, 0.9, 0.9, 0.9],
            "fssim": [0.4, 0.8, 0.8, 0.8],
        }
    )
    result = aggregate(frame, ("HCOCO", "HAdobe5k", "HFlickr", "Hday2night"))
    assert list(result["subsets"]) == ["HCOCO", "HAdobe5k", "All"]  # absent subsets left out
    assert result["subsets"]["HCOCO"]["mse"] == pytest.approx(20.0)
    assert result["subsets"]["All"] == pytest.approx(
        {"n": 4, "mse": 40.0, "psnr": 37.5, "fmse": 2.5, "ssim": 0.8, "fssim": 0.7}
    )  # not the mean of subset means (60.0 for MSE)
    bins = result["fg_ratio_bins"]
    assert [bins[b]["n"] for b in ("0-5", "5-15", "15-100")] == [1, 1, 2]
    assert bins["15-100"]["mse"] == pytest.approx(25.0)
    empty = aggregate(frame[frame["fg_ratio"] > 0.05])
    assert empty["fg_ratio_bins"]["0-5"] == {
        "n": 0,
        "mse": None,
        "psnr": None,
        "fmse": None,
        "ssim": None,
        "fssim": None,
    }


def test_composite_error_bins_group_images_by_the_input_composites_own_fmse():
    from regionharmony.evaluation.metrics import error_bin

    assert [error_bin(v) for v in (0.0, 499.9, 500.0, 1999.0, 2000.0, 9e4)] == [
        "mild",
        "mild",
        "medium",
        "medium",
        "strong",
        "strong",
    ]
    assert error_bin(150.0, (100.0, 200.0)) == "medium"
    frame = pd.DataFrame(
        {
            "subset": ["HCOCO"] * 4,
            "fg_ratio": [0.1] * 4,
            "composite_fmse": [100.0, 300.0, 800.0, 5000.0],
            "mse": [1.0, 2.0, 3.0, 4.0],
            "psnr": [30.0] * 4,
            "fmse": [200.0, 250.0, 400.0, 1000.0],
            "ssim": [0.9] * 4,
            "fssim": [0.8] * 4,
        }
    )
    result = aggregate(frame)
    assert result["composite_error_edges"] == [500.0, 2000.0]
    bins = result["composite_error_bins"]
    assert [bins[b]["n"] for b in ("mild", "medium", "strong")] == [2, 1, 1]
    # the mild bin got worse (fMSE 225 against the composite's 200): the table shows it
    assert bins["mild"]["fmse"] == pytest.approx(225.0)
    assert bins["mild"]["composite_fmse"] == pytest.approx(200.0)
    assert bins["strong"]["composite_fmse"] == pytest.approx(5000.0)
    summary = seed_summary({"seed0": result, "seed1": result})
    assert summary["composite_error_bins"]["mild"]["composite_fmse"] == pytest.approx(200.0)
    assert summary["composite_error_bins"]["mild"]["fmse_seeds"] == [225.0, 225.0]
