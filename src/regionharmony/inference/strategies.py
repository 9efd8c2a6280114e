"""The strategies that carry the network's correction from its working resolution to the
composite's own (see `regionharmony.inference.harmonize`): ``color``, ``residual``, ``full``."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from regionharmony.errors import HarmonizeError
from regionharmony.inference.memory import check_full_fits

if TYPE_CHECKING:
    from regionharmony.inference.engine import Engine
    from regionharmony.inference.onnx_runtime import OnnxEngine

STRATEGIES: tuple[str, ...] = ("color", "residual", "full")
DEFAULT_STRATEGY = "color"
RIDGE = 1e-3  # colour fit: weight of the pull toward the identity transform, per pixel


# -- carrying the correction to full resolution ------------------------------------------------


def working_size(height: int, width: int, max_side: int) -> tuple[int, int]:
    """(height, width) with the longest side at most `max_side`, aspect ratio kept."""
    scale = max_side / max(height, width)
    if scale >= 1:
        return height, width
    return max(1, round(height * scale)), max(1, round(width * scale))


def _resize_image(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bicubic (antialiased) resize with Pillow, as the evaluation protocol does."""
    from regionharmony.data import resize_image

    return resize_image(image, (width, height))


def _resize_mask(mask: np.ndarray, height: int, width: int) -> np.ndarray:
    from regionharmony.data import resize_binary_mask as resize_mask

    return resize_mask(mask, (width, height))


def working_pair(
    composite: np.ndarray, mask: np.ndarray, side: int
) -> tuple[np.ndarray, np.ndarray]:
    """The composite and the mask downscaled so that the longest side is at most `side`."""
    low_h, low_w = working_size(*mask.shape, side)
    return _resize_image(composite, low_h, low_w), _resize_mask(mask, low_h, low_w)


def run_network(engine: Engine | OnnxEngine, composite: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The blended network output H * M + I' * (1 - M), float (H, W, 3) in [0, 1].

    In numpy, so that the onnxruntime engine needs no torch; the same float32 operations as
    `data.dataset.to_tensor` and `model.harmonizer.blend`, so the same bits."""
    comp = np.ascontiguousarray(composite.transpose(2, 0, 1)[None], dtype=np.float32)
    comp /= 255
    weight = mask.astype(np.float32)[None, None]
    raw = engine.run_arrays(comp, weight)
    blended = np.clip(raw * weight + comp * (1 - weight), 0, 1)
    return blended[0].transpose(1, 2, 0)


def mask_box(mask: np.ndarray) -> tuple[slice, slice]:
    """The rows and columns that hold the foreground: indexing the bounding box instead of the
    whole image reads a fraction of a large composite, in the same (row-major) order."""
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    return slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)


def fit_color_transform(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """(4, 3) affine map A minimising |[source, 1] A - target|^2 + RIDGE * N * |A - identity|^2
    over the pixels (N, 3) given; the small ridge keeps a flat or tiny foreground from giving a
    degenerate map."""
    design = np.concatenate([source, np.ones((len(source), 1))], axis=1)
    identity = np.vstack([np.eye(3), np.zeros((1, 3))])
    ridge = RIDGE * len(source)
    gram = design.T @ design + ridge * np.eye(4)
    return np.linalg.solve(gram, design.T @ target + ridge * identity)


def carry_color(composite, mask, comp_low, mask_low, out_low) -> np.ndarray:
    """Strategy `color`: the low-resolution foreground colour map applied at full resolution.
    Returns the new foreground pixels, float32 (N, 3) on the 0-1 scale (unclipped)."""
    source = comp_low[mask_low].astype(np.float64) / 255.0
    transform = fit_color_transform(source, out_low[mask_low].astype(np.float64))
    gain = (transform[:3] / 255.0).astype(np.float32)
    box = mask_box(mask)
    pixels = composite[box][mask[box]].astype(np.float32)
    pixels = pixels @ gain
    pixels += transform[3].astype(np.float32)
    return pixels


def carry_residual(composite, mask, comp_low, mask_low, out_low) -> np.ndarray:
    """Strategy `residual`: the low-resolution correction, upsampled mask-normalised bilinear
    (sum of weighted corrections over sum of weights, sampled at each full-resolution foreground
    pixel), added to the composite. Foreground pixels that no low-resolution foreground pixel
    reaches get the mean correction. Returns float32 (N, 3) on the 0-1 scale (unclipped)."""
    import torch
    import torch.nn.functional as F

    height, width = mask.shape
    delta = out_low - comp_low.astype(np.float32) / 255.0
    weight = mask_low.astype(np.float32)
    stacked = np.concatenate([delta * weight[..., None], weight[..., None]], 2)
    planes = torch.from_numpy(stacked).permute(2, 0, 1)[None]
    # sample at the foreground pixels' centres, the coordinates F.interpolate(bilinear,
    # align_corners=False) uses
    ys, xs = np.nonzero(mask)
    grid = np.stack([(2 * xs + 1) / width - 1, (2 * ys + 1) / height - 1], axis=-1)
    grid_t = torch.from_numpy(grid.astype(np.float32))[None, None]
    sampled = F.grid_sample(
        planes, grid_t, mode="bilinear", padding_mode="border", align_corners=False
    )[0, :, 0]  # (4, N)
    sums, weights = sampled[:3], sampled[3]
    mean = torch.from_numpy(delta[mask_low].mean(0))[:, None]
    correction = torch.where(weights > 1e-3, sums / weights.clamp_min(1e-3), mean)
    return composite[ys, xs].astype(np.float32) / 255.0 + correction.T.numpy()


CARRIERS: dict[str, Callable[..., np.ndarray]] = {"color": carry_color, "residual": carry_residual}


def harmonize_arrays(
    composite: np.ndarray,
    mask: np.ndarray,
    engine: Engine,
    *,
    max_side: int | None = None,
    strategy: str = DEFAULT_STRATEGY,
    low: tuple[np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    """uint8 (H, W, 3) harmonised image from uint8 composite and bool mask (checked).

    `low`: `working_pair`'s result, when the caller made it already (the command does, while
    torch is still loading); ignored unless it has the working size."""
    if strategy not in STRATEGIES:
        raise HarmonizeError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
    side = engine.train_size if max_side is None else int(max_side)
    if side < 1:
        raise HarmonizeError(f"max_side must be a positive number of pixels, got {max_side}")
    height, width = mask.shape
    low_h, low_w = working_size(height, width, side)
    if strategy == "full" and (low_h, low_w) != (height, width):
        check_full_fits(height, width, engine.base_width, engine.device)
    if strategy == "full" or (low_h, low_w) == (height, width):
        foreground = run_network(engine, composite, mask)[mask]
    else:
        if low is None or low[1].shape != (low_h, low_w):
            low = working_pair(composite, mask, side)
        comp_low, mask_low = low
        out_low = run_network(engine, comp_low, mask_low)
        foreground = CARRIERS[strategy](composite, mask, comp_low, mask_low, out_low)
    return paste(foreground, composite, mask)


def paste(foreground: np.ndarray, composite: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The blend through the full-resolution mask: `foreground` (float, 0-1 scale, in the
    row-major order of the mask's pixels) quantised into a copy of the composite, whose
    background is kept bit for bit. In place on `foreground` (the same float32 operations as
    ``np.round(np.clip(f, 0, 1) * 255)``, without three temporaries of its size)."""
    foreground = np.asarray(foreground)
    np.clip(foreground, 0, 1, out=foreground)
    foreground *= 255
    np.round(foreground, out=foreground)
    result = composite.copy()
    box = mask_box(mask)
    inside = result[box]  # a view: assigning through it writes `result`
    inside[mask[box]] = foreground.astype(np.uint8)
    return result
