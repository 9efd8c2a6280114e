"""Harmonisation metrics: MSE, PSNR, fMSE, SSIM, fSSIM and their aggregation (docs/evaluation.md).

Every function takes float arrays on the 0-255 scale, prediction first: ``pred`` and
``target`` (H, W, 3), and where needed a binary foreground ``mask`` (H, W).

* MSE: mean squared error over H * W * 3.
* fMSE: squared error summed over the foreground pixels and the 3 channels, divided by
  3 * (foreground pixels).
* PSNR, per image (the tables average per-image values). ``data_range``: "official" (the
  default) is ``pred.max() - pred.min()``, as in the dataset's own bcmi ``evaluation.py``;
  "255" a fixed 255; "target" ``target.max()``.
* SSIM / fSSIM: Gaussian window 11 x 11, sigma 1.5, population covariances; fSSIM is the full
  map averaged over the foreground pixels of each channel, then over the channels (IIH's
  definition). ``mode``: "iih" (the default) reproduces IIH's ``ih_evaluation.py`` (its
  ``pytorch_ssim``), whose fSSIM numbers the paper's Table III copies: zero padding, SSIM the
  mean of the whole map, and constants scaled for [0, 1] inputs, C1 = 0.01 ** 2 and
  C2 = 0.03 ** 2, while fed 0-255 values. "standard" is scikit-image's
  ``structural_similarity`` (reflect border, the 5-pixel border strip left out of the SSIM
  mean) with C1 = (0.01 * 255) ** 2, C2 = (0.03 * 255) ** 2 (Wang et al. 2004).
* SSIM and fSSIM are stored on their raw 0-1 scale; reports multiply by 100 to print them like
  the paper's tables.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd
from scipy.ndimage import correlate1d
from skimage.metrics import mean_squared_error, peak_signal_noise_ratio, structural_similarity

PsnrRange = Literal["official", "255", "target"]
SsimMode = Literal["iih", "standard"]
PSNR_RANGES: tuple[str, ...] = ("official", "255", "target")
SSIM_MODES: tuple[str, ...] = ("iih", "standard")
SSIM_DATA_RANGE = {"iih": 1.0, "standard": 255.0}
METRICS: tuple[str, ...] = ("mse", "psnr", "fmse", "ssim", "fssim")
# foreground-ratio bins of the optional breakdown: [low, high) in percent, the last one closed
FG_BINS: dict[str, tuple[float, float]] = {"0-5": (0, 5), "5-15": (5, 15), "15-100": (15, 100)}
# bins of the composite's own foreground error (its fMSE against the real image): mild below the
# first edge, strong from the second (our choice; params.yaml error_bins sets them)
ERROR_BINS: tuple[str, ...] = ("mild", "medium", "strong")
ERROR_EDGES: tuple[float, float] = (500.0, 2000.0)


def _check(pred: np.ndarray, target: np.ndarray, mask: np.ndarray | None = None) -> None:
    if pred.shape != target.shape or pred.ndim != 3 or pred.shape[2] != 3:
        raise ValueError(f"expected two (H, W, 3) arrays, got {pred.shape} and {target.shape}")
    if mask is not None:
        if mask.shape != pred.shape[:2]:
            raise ValueError(f"mask shape {mask.shape} does not match images {pred.shape[:2]}")
        if not mask.any():
            raise ValueError("empty foreground mask: foreground metrics are undefined")


def mse(pred: np.ndarray, target: np.ndarray) -> float:
    """Mean squared error over H * W * 3, 0-255 scale."""
    _check(pred, target)
    return float(mean_squared_error(np.asarray(target, np.float64), np.asarray(pred, np.float64)))


def fmse(pred: np.ndarray, target: np.ndarray, mask: np.ndarray) -> float:
    """Foreground MSE: sum of squared errors over the foreground pixels and 3 channels, divided
    by 3 * (foreground pixels)."""
    mask = np.asarray(mask, bool)
    _check(pred, target, mask)
    diff = np.asarray(pred, np.float64)[mask] - np.asarray(target, np.float64)[mask]
    return float(np.mean(diff**2))


def psnr_data_range(pred: np.ndarray, target: np.ndarray, data_range: PsnrRange) -> float:
    if data_range == "official":
        return float(np.max(pred) - np.min(pred))
    if data_range == "255":
        return 255.0
    if data_range == "target":
        return float(np.max(target))
    raise ValueError(f"unknown PSNR data range {data_range!r}; choose from {PSNR_RANGES}")


def psnr(pred: np.ndarray, target: np.ndarray, data_range: PsnrRange = "official") -> float:
    """Peak signal-to-noise ratio of one image, 10 log10(R^2 / MSE), in dB (inf when equal)."""
    _check(pred, target)
    pred, target = np.asarray(pred, np.float64), np.asarray(target, np.float64)
    peak = psnr_data_range(pred, target, data_range)
    if np.array_equal(pred, target):
        return float("inf")
    return float(peak_signal_noise_ratio(target, pred, data_range=peak))


def gaussian_kernel(size: int = 11, sigma: float = 1.5) -> np.ndarray:
    """The 1-D Gaussian of the SSIM window, normalised to sum 1."""
    g = np.exp(-((np.arange(size) - size // 2) ** 2) / (2 * sigma**2))
    return g / g.sum()


def gaussian_window(size: int = 11, sigma: float = 1.5) -> np.ndarray:
    """The 2-D SSIM window, the outer product of `gaussian_kernel` with itself."""
    g = gaussian_kernel(size, sigma)
    return np.outer(g, g)


def _blur_planes(planes: np.ndarray) -> np.ndarray:
    """Zero-padded correlation of each (H, W) plane of `planes` (N, H, W) with the 11 x 11
    Gaussian window, done separably: the 1-D kernel along W, then along H.

    Each pass runs along the contiguous last axis (scipy's line-by-line filter is several times
    slower on a strided axis), with a transposing copy in between, so the result is transposed:
    (N, W, H). Per pixel it is the weighted sum of a 2-D ``correlate(x, gaussian_window(),
    mode="constant")`` summed in another order: equal to it up to float64 rounding, not bit for
    bit (scipy's 2-D correlate adds the 121 products one after the other).
    """
    g = gaussian_kernel()
    along_w = correlate1d(planes, g, axis=-1, mode="constant")
    return correlate1d(
        np.ascontiguousarray(along_w.transpose(0, 2, 1)), g, axis=-1, mode="constant"
    )


def iih_ssim_map(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The SSIM map of IIH's ``pytorch_ssim`` as ``ih_evaluation.py`` calls it: per channel,
    11 x 11 Gaussian (sigma 1.5) with ZERO padding of 5 pixels, C1 = 0.01 ** 2, C2 = 0.03 ** 2.

    The Gaussian is applied separably (`_blur_planes`) to the 5 quantities x 3 channels at once
    (about 3x faster than the 2-D correlate, at 256 and at 1024 px). The map is (H, W, 3)
    float64; it differs from a 2-D correlate's by float64 rounding only, which the variances'
    cancellation against the tiny C2 amplifies to ~1e-8 where a window is flat.
    """
    height, width, channels = pred.shape
    p, t = pred.transpose(2, 0, 1), target.transpose(2, 0, 1)  # (C, H, W) views
    planes = np.empty((5, channels, height, width))
    planes[0], planes[1] = p, t
    np.multiply(p, p, out=planes[2])
    np.multiply(t, t, out=planes[3])
    np.multiply(p, t, out=planes[4])
    blurred = _blur_planes(planes.reshape(5 * channels, height, width))
    mu_p, mu_t, pp, tt, pt = blurred.reshape(5, channels, width, height)

    c1, c2 = 0.01**2, 0.03**2
    var_p = pp - mu_p**2
    var_t = tt - mu_t**2
    cov = pt - mu_p * mu_t
    full = ((2 * mu_p * mu_t + c1) * (2 * cov + c2)) / (
        (mu_p**2 + mu_t**2 + c1) * (var_p + var_t + c2)
    )
    return np.ascontiguousarray(full.transpose(2, 1, 0))  # (C, W, H) -> (H, W, C)


def ssim_map(
    pred: np.ndarray, target: np.ndarray, mode: SsimMode = "iih"
) -> tuple[float, np.ndarray]:
    """(SSIM, full SSIM map (H, W, 3)) with an 11 x 11 Gaussian window, sigma 1.5.

    "iih": IIH's implementation (zero padding, the mean over the whole map); "standard":
    scikit-image's (reflect border, the 5-pixel border strip left out of the mean).
    """
    _check(pred, target)
    if mode not in SSIM_MODES:
        raise ValueError(f"unknown SSIM mode {mode!r}; choose from {SSIM_MODES}")
    pred, target = np.asarray(pred, np.float64), np.asarray(target, np.float64)
    if mode == "iih":
        full = iih_ssim_map(pred, target)
        return float(full.mean()), full
    value, full = structural_similarity(
        target,
        pred,
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        data_range=SSIM_DATA_RANGE[mode],
        channel_axis=-1,
        full=True,
    )
    return float(value), full


def ssim(pred: np.ndarray, target: np.ndarray, mode: SsimMode = "iih") -> float:
    """SSIM of one image, raw 0-1 scale."""
    return ssim_map(pred, target, mode)[0]


def masked_map_mean(values: np.ndarray, mask: np.ndarray) -> float:
    """Mean of an (H, W, C) map over the foreground pixels of each channel, then over C."""
    return float(np.mean([values[..., c][mask].mean() for c in range(values.shape[-1])]))


def fssim(pred: np.ndarray, target: np.ndarray, mask: np.ndarray, mode: SsimMode = "iih") -> float:
    """Foreground SSIM: the SSIM map averaged over the foreground, then the channels."""
    mask = np.asarray(mask, bool)
    _check(pred, target, mask)
    return masked_map_mean(ssim_map(pred, target, mode)[1], mask)


def image_metrics(
    pred: np.ndarray,
    target: np.ndarray,
    mask: np.ndarray,
    psnr_range: PsnrRange = "official",
    ssim_mode: SsimMode | None = "iih",
) -> dict[str, float]:
    """Every metric of one image, plus its foreground ratio (0-1); no SSIM / fSSIM when
    `ssim_mode` is None (they cost most of the time)."""
    mask = np.asarray(mask, bool)
    _check(pred, target, mask)
    scores = {
        "fg_ratio": float(mask.mean()),
        "mse": mse(pred, target),
        "psnr": psnr(pred, target, psnr_range),
        "fmse": fmse(pred, target, mask),
    }
    if ssim_mode is not None:
        value, full = ssim_map(pred, target, ssim_mode)
        scores.update(ssim=value, fssim=masked_map_mean(full, mask))
    return scores


def fg_bin(fg_ratio: float) -> str:
    """The foreground-ratio bin of an image: [0, 5) %, [5, 15) %, [15, 100] %."""
    percent = 100 * fg_ratio
    for name, (low, high) in FG_BINS.items():
        if low <= percent < high:
            return name
    return list(FG_BINS)[-1]


def error_bin(composite_fmse: float, edges: tuple[float, float] = ERROR_EDGES) -> str:
    """The composite-error bin of an image: mild [0, edges[0]), medium [edges[0], edges[1]),
    strong [edges[1], inf), by the input composite's fMSE."""
    if composite_fmse < edges[0]:
        return "mild"
    return "medium" if composite_fmse < edges[1] else "strong"


def mean_scores(frame: pd.DataFrame) -> dict[str, float | int | None]:
    """{"n", and the mean of every metric} over the rows of `frame` (None where it is empty)."""
    out: dict[str, float | int | None] = {"n": len(frame)}
    for metric in METRICS:
        out[metric] = float(frame[metric].mean()) if len(frame) else None
    return out


def aggregate(
    per_image: pd.DataFrame,
    subset_order: tuple[str, ...] | None = None,
    error_edges: tuple[float, float] = ERROR_EDGES,
) -> dict:
    """Per-subset, "All", foreground-ratio-bin and composite-error-bin means of a per-image
    table.

    `per_image` has columns subset, fg_ratio, composite_fmse and the metrics. "All" is the
    image-weighted mean over every row (the protocol's "All", not a mean of subset means).
    Subsets without rows are left out; the bins are always present (n 0 and null means when
    empty); a composite-error bin also holds the composite's own mean fMSE.
    """
    subsets = list(subset_order or [])
    subsets += [s for s in dict.fromkeys(per_image["subset"]) if s not in subsets]
    by_subset = {s: mean_scores(per_image[per_image["subset"] == s]) for s in subsets}
    by_subset = {s: v for s, v in by_subset.items() if v["n"]}
    by_subset["All"] = mean_scores(per_image)
    bins = per_image["fg_ratio"].map(fg_bin)
    out = {
        "subsets": by_subset,
        "fg_ratio_bins": {name: mean_scores(per_image[bins == name]) for name in FG_BINS},
    }
    if "composite_fmse" not in per_image:  # a table written before the column existed
        return out
    errors = per_image["composite_fmse"].map(lambda v: error_bin(v, error_edges))
    by_error = {}
    for name in ERROR_BINS:
        rows = per_image[errors == name]
        composite = float(rows["composite_fmse"].mean()) if len(rows) else None
        by_error[name] = {**mean_scores(rows), "composite_fmse": composite}
    return {**out, "composite_error_edges": list(error_edges), "composite_error_bins": by_error}


GROUPS = ("subsets", "fg_ratio_bins", "composite_error_bins")


def seed_summary(per_seed: dict[str, dict]) -> dict:
    """The metrics.json of several seeds of one variant: per subset and bin, every metric's
    mean over seeds, `<metric>_std` (sample standard deviation; 0 for one seed) and
    `<metric>_seeds` (the values, in seed order). `per_seed` maps a seed name to that seed's
    metrics.json (`aggregate` plus the evaluation fields)."""
    runs = list(per_seed.values())
    groups = [g for g in GROUPS if g in runs[0]]
    out: dict = {k: v for k, v in runs[0].items() if k not in groups}
    out["seeds"] = list(per_seed)
    for group in groups:
        out[group] = {}
        for name, first in runs[0][group].items():
            entry: dict = {"n": first["n"]}
            if "composite_fmse" in first:  # the same images in every seed
                entry["composite_fmse"] = first["composite_fmse"]
            for metric in METRICS:
                values = [run[group][name][metric] for run in runs]
                known = [v for v in values if v is not None]
                entry[metric] = float(np.mean(known)) if known else None
                entry[f"{metric}_std"] = float(np.std(known, ddof=1)) if len(known) > 1 else 0.0
                entry[f"{metric}_seeds"] = values
            out[group][name] = entry
    return out


def headline(metrics: dict) -> dict[str, float | int | None]:
    """The few numbers `dvc metrics` / `dvc exp show` compare: "All" means (and their spread
    over seeds, where there are seeds)."""
    overall = metrics["subsets"]["All"]
    keep = {"n": overall["n"]}
    for metric in METRICS:
        keep[metric] = overall[metric]
        if f"{metric}_std" in overall:
            keep[f"{metric}_std"] = overall[f"{metric}_std"]
    if "seeds" in metrics:
        keep["seeds"] = len(metrics["seeds"])
    return keep
