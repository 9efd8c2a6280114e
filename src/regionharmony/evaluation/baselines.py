"""Classical harmonisation baselines: colour statistics moved from the background to the foreground.

Neither learns anything; both only look at the composite and its mask, like the identity
baseline ("input composite" row of Table II), and give the rows a reader compares a learned
model against:

* `reinhard_baseline`: Reinhard, Ashikhmin, Gooch and Shirley, "Color Transfer between Images",
  IEEE Computer Graphics and Applications 21(5), 2001. Per channel of a decorrelated colour
  space, the foreground's mean and standard deviation are replaced by the background's:
  ``x' = (x - mu_fg) / sigma_fg * sigma_bg + mu_bg``. Reinhard et al. work in the l-alpha-beta
  space of Ruderman et al.; we use CIELAB (D65), the common modern substitute (it is what
  iHarmony4's HCOCO composites were made with, and what `regionharmony.mini` uses).
* `histogram_baseline`: histogram matching (histogram specification; Gonzalez and Woods,
  "Digital Image Processing", Sec. 3.3) of each RGB channel of the foreground pixels to the
  background pixels' histogram, with scikit-image's ``exposure.match_histograms``.

Both take a uint8 (H, W, 3) RGB composite and a bool (H, W) mask and return uint8 (H, W, 3) with
every background pixel unchanged. An empty mask or one covering the whole image is a ValueError
(there is nothing to change, or nothing to match to).

`baseline_network(name)` wraps one as a module with the generator's call signature, so that
`regionharmony.evaluation.evaluate.evaluate_model` scores it with the same protocol as a model.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
from skimage import color, exposure


def _check(composite: np.ndarray, mask: np.ndarray) -> np.ndarray:
    mask = np.asarray(mask, bool)
    if composite.dtype != np.uint8 or composite.ndim != 3 or composite.shape[2] != 3:
        raise ValueError(
            f"composite must be uint8 (H, W, 3), got {composite.dtype} {composite.shape}"
        )
    if mask.shape != composite.shape[:2]:
        raise ValueError(f"mask shape {mask.shape} differs from composite {composite.shape[:2]}")
    if not mask.any():
        raise ValueError("empty mask: no foreground to harmonise")
    if mask.all():
        raise ValueError("the mask covers the whole image: no background to match")
    return mask


def _paste(composite: np.ndarray, mask: np.ndarray, foreground: np.ndarray) -> np.ndarray:
    """`foreground` (N, 3) float in [0, 1] written into a copy of the composite at `mask`."""
    out = composite.copy()
    out[mask] = np.round(np.clip(foreground, 0, 1) * 255).astype(np.uint8)
    return out


def reinhard_baseline(composite: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Reinhard et al. (2001) colour transfer in CIELAB: the foreground's per-channel mean and
    std replaced by the background's. A flat foreground channel (std 0) is only shifted."""
    mask = _check(composite, mask)
    lab = color.rgb2lab(composite.astype(np.float64) / 255.0)
    fg, bg = lab[mask], lab[~mask]
    mean_fg, std_fg = fg.mean(0), fg.std(0)
    mean_bg, std_bg = bg.mean(0), bg.std(0)
    ratio = np.divide(std_bg, std_fg, out=np.ones(3), where=std_fg > 1e-6)
    moved = (fg - mean_fg) * ratio + mean_bg
    with warnings.catch_warnings():
        # Lab values outside the sRGB gamut are clipped by lab2rgb, which is the intent
        warnings.simplefilter("ignore", UserWarning)
        rgb = color.lab2rgb(moved[:, None, :])[:, 0, :]
    return _paste(composite, mask, rgb)


def histogram_baseline(composite: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Per-RGB-channel histogram matching of the foreground pixels to the background pixels
    (scikit-image ``match_histograms``)."""
    mask = _check(composite, mask)
    fg = composite[mask][:, None, :]
    bg = composite[~mask][:, None, :]
    matched = exposure.match_histograms(fg, bg, channel_axis=-1)[:, 0, :]
    return _paste(composite, mask, matched.astype(np.float64) / 255.0)


BASELINES: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "reinhard": reinhard_baseline,
    "histogram": histogram_baseline,
}


def baseline_network(name: str):
    """An nn.Module computing baseline `name` with the generator's signature:
    (composite (B, 3, H, W) in [0, 1], mask (B, 1, H, W)) -> (B, 3, H, W) in [0, 1].

    Each image goes through uint8 exactly as a saved file would (the evaluation protocol feeds
    8-bit images, so the round trip is lossless)."""
    import torch
    from torch import nn

    from regionharmony.data.dataset import to_tensor
    from regionharmony.evaluation.protocol import to_uint8

    if name not in BASELINES:
        raise ValueError(f"unknown baseline {name!r}; choose one of {sorted(BASELINES)}")
    function = BASELINES[name]

    class Baseline(nn.Module):
        def forward(self, composite: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
            images = to_uint8(composite)
            masks = mask[:, 0].detach().cpu().numpy() > 0.5
            out = [function(i, m) for i, m in zip(images, masks, strict=True)]
            return torch.stack([to_tensor(o) for o in out]).to(composite.device)

    Baseline.__name__ = Baseline.__qualname__ = f"{name.capitalize()}Baseline"
    return Baseline()
