"""The perturbations of the embedded dataset's composites: one family per subset, each moving the
foreground along one light axis (see `regionharmony.data.mini` for why light), on the side away
from the background's light."""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
from skimage import color, exposure

# The light axis every family moves along: exposure and colour temperature change together,
# brighter and warmer (sun, tungsten) or darker and cooler (shade, dusk). A change of light is
# what the background of a photograph tells a model about its foreground; a small model trained
# for seconds learns to undo changes along this axis, while changes with independent signs of
# exposure and white balance, or an object recoloured with another object's colours, it cannot
# (see `PERTURBATIONS`).
LIGHT_EV = (0.4, 1.2)  # exposure change, stops
LIGHT_TEMPERATURE = (0.08, 0.2)  # red gain 1 + t, blue gain 1 - t
LIGHT_GAMMA = 0.2  # log-gamma, toward the same side as the exposure


def relight(fg: np.ndarray, sign: float, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """The foreground pixels (N, 3, float 0-1) under another light on the light axis, brighter
    and warmer (`sign` +1) or darker and cooler (-1): exposure, white balance and gamma."""
    ev = sign * rng.uniform(*LIGHT_EV)
    temperature = sign * rng.uniform(*LIGHT_TEMPERATURE)
    gamma = np.exp(-sign * rng.uniform(0.0, LIGHT_GAMMA))
    x = np.clip(fg * 2**ev, 0, 1) * np.array([1 + temperature, 1.0, 1 - temperature])
    x = np.clip(x, 0, 1) ** gamma
    meta = {"exposure_ev": ev, "temperature": temperature, "gamma": gamma}
    return x, {k: round(float(v), 4) for k, v in meta.items()}


def reinhard(fg: np.ndarray, sign: float, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """HCOCO: Reinhard et al. 2001 colour transfer of Lab mean/std from a reference: the same
    foreground photographed under another light (`relight`)."""
    ref, meta = relight(fg, sign, rng)
    lab = color.rgb2lab(fg[:, None])[:, 0]
    lab_ref = color.rgb2lab(ref[:, None])[:, 0]
    mean, std = lab.mean(0), lab.std(0) + 1e-6
    ratio = np.clip(lab_ref.std(0) / std, 0.5, 2.0)  # keep texture contrast plausible
    moved = (lab - mean) * ratio + lab_ref.mean(0)
    alpha = rng.uniform(0.8, 1.0)
    with warnings.catch_warnings():
        # out-of-gamut Lab values are clipped, which is what we want; no need to say so each time
        warnings.simplefilter("ignore", UserWarning)
        out = color.lab2rgb(((1 - alpha) * lab + alpha * moved)[:, None])[:, 0]
    return out, {"reference": "relit", **meta, "strength": round(float(alpha), 4)}


def histogram_match(
    fg: np.ndarray, sign: float, rng: np.random.Generator
) -> tuple[np.ndarray, dict]:
    """HFlickr: per-channel histogram matching of the foreground to a reference: the same
    foreground photographed under another light (`relight`)."""
    ref, meta = relight(fg, sign, rng)
    matched = exposure.match_histograms(fg[:, None], ref[:, None], channel_axis=-1)[:, 0]
    alpha = rng.uniform(0.8, 1.0)
    out = (1 - alpha) * fg + alpha * matched
    return out, {"reference": "relit", **meta, "strength": round(float(alpha), 4)}


def retouch(fg: np.ndarray, sign: float, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """HAdobe5k: another retoucher's edit, brighter and warmer or darker and cooler (exposure,
    gamma and white balance on the light axis), with some contrast and saturation."""
    p = {
        "exposure_ev": sign * rng.uniform(0.3, 0.9),
        "gamma": np.exp(-sign * rng.uniform(0.0, 0.3)),
        "contrast": rng.uniform(-0.2, 0.2),
        "saturation": np.exp(rng.uniform(-0.3, 0.3)),
        "temperature": sign * rng.uniform(0.04, 0.12),
    }
    x = np.clip(fg * 2 ** p["exposure_ev"], 0, 1) ** p["gamma"]
    x = 0.5 + (x - 0.5) * (1 + p["contrast"])
    luma = x @ np.array([0.299, 0.587, 0.114])
    x = luma[:, None] + p["saturation"] * (x - luma[:, None])
    x = x * np.array([1 + p["temperature"], 1.0, 1 - p["temperature"]])
    return x, {k: round(float(v), 4) for k, v in p.items()}


def illumination(fg: np.ndarray, sign: float, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """Hday2night: the same surface under other light: dusk/night (darker, cooler) or warm
    daylight (brighter, warmer)."""
    night = sign < 0
    if night:
        gain = rng.uniform(0.35, 0.7)
        tint = [rng.uniform(0.7, 0.9), rng.uniform(0.85, 1.0), rng.uniform(1.0, 1.2)]
        gamma = rng.uniform(1.1, 1.5)
    else:
        gain = rng.uniform(1.1, 1.5)
        tint = [rng.uniform(1.05, 1.25), rng.uniform(0.95, 1.05), rng.uniform(0.7, 0.9)]
        gamma = rng.uniform(0.75, 0.95)
    x = np.clip(fg * gain * np.array(tint), 0, 1) ** gamma
    meta = {"night": night, "gain": gain, "tint": tint, "gamma": gamma}
    return x, {k: v if k == "night" else np.round(v, 4).tolist() for k, v in meta.items()}


# Each takes the foreground pixels (N, 3) in [0, 1], the side of the light axis (+1 brighter and
# warmer, -1 darker and cooler) and a generator, and returns the pixels recoloured, with the
# parameters it drew.
PERTURBATIONS: dict[str, Callable[..., tuple[np.ndarray, dict]]] = {
    "HCOCO": reinhard,
    "HAdobe5k": retouch,
    "HFlickr": histogram_match,
    "Hday2night": illumination,
}


def light_coordinate(pixels: np.ndarray) -> float:
    """Where uint8 RGB pixels (N, 3) lie on the light axis: mean CIELAB (L* + b*) / sqrt 2,
    lighter and yellower is higher."""
    lab = color.rgb2lab(pixels[::3, None] / 255.0)[:, 0]
    return float(lab[:, 0].mean() + lab[:, 2].mean()) / np.sqrt(2)


def away_from_background(real: np.ndarray, mask: np.ndarray) -> float:
    """The side of the light axis that takes the foreground further from the background's
    light: +1 (brighter and warmer) if the foreground already lies above the background on the
    axis, else -1.

    This is what makes a composite inharmonious rather than merely different: a change toward
    the background's light would make some composites more harmonious than their real photo.
    It also makes the direction of the correction a question the background answers. With the
    side drawn at random instead, the mini model cannot tell a darkened foreground from a dark
    object, and learns little in its CPU budget (measured: issue 13 closing note); with the
    side redrawn together with the strengths, as before, two thirds of the composites were
    brightened (darkening bright foregrounds overshoots the window more often), a bias the
    model learned instead of the light.
    """
    return 1.0 if light_coordinate(real[mask]) >= light_coordinate(real[~mask]) else -1.0
