"""iHarmony4: the reader, its transforms, root validation (`check-data`) and the resize cache
(`prepare`).

Layout (DESIGN.md section 3)::

    ROOT/IHD_train.txt, IHD_test.txt          lines "HAdobe5k/composite_images/a0001_1_1.jpg"
    ROOT/<Subset>/<Subset>_train.txt, _test.txt   bare composite file names
    ROOT/<Subset>/composite_images/<id>_<maskid>_<k>.jpg
    ROOT/<Subset>/masks/<id>_<maskid>.png      RGB (or L), 0/255; channel 0 is read
    ROOT/<Subset>/real_images/<id>.jpg

with <Subset> one of HCOCO, HAdobe5k, HFlickr, Hday2night. Names are split on '_' from the
right only, so ids may contain '-' (Hday2night: ``d90000-10_1_3.jpg``) or even '_'.

Which list is read: without a subset selection the union list ``IHD_<split>.txt``; with one,
the per-subset lists ``<Subset>/<Subset>_<split>.txt``. `check_root` verifies that the two
agree wherever both exist, so both readings give the same pairs.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset
from tqdm import tqdm

from regionharmony.io import atomic_write_text

SUBSETS: tuple[str, ...] = ("HCOCO", "HAdobe5k", "HFlickr", "Hday2night")
SPLITS: tuple[str, ...] = ("train", "test")
# Official iHarmony4 split sizes (DoveNet, CVPR 2020).
OFFICIAL_COUNTS: dict[str, dict[str, int]] = {
    "train": {"HCOCO": 38545, "HAdobe5k": 19437, "HFlickr": 7449, "Hday2night": 311},
    "test": {"HCOCO": 4283, "HAdobe5k": 2160, "HFlickr": 828, "Hday2night": 133},
}
OFFICIAL_TOTALS: dict[str, int] = {"train": 65742, "test": 7404}
JPEG_SETTINGS = {"quality": 95, "subsampling": 0, "optimize": False, "progressive": False}
MAX_LISTED_PROBLEMS = 10  # how many problems `require_valid_root` names in its error


class DataError(ValueError):
    """A dataset root, list or file that cannot be used; the message names the file."""


# -- names and lists ------------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    """One composite with its mask and real image."""

    subset: str
    name: str  # the composite's file stem, e.g. "a0001_1_1"
    composite: Path
    mask: Path
    real: Path


def parse_composite_name(filename: str) -> tuple[str, str, str]:
    """``<id>_<maskid>_<k>.<ext>`` -> (id, maskid, k), splitting on the last two '_' only."""
    stem, dot, _ = filename.rpartition(".")
    parts = stem.rsplit("_", 2)
    if not dot or "/" in filename or len(parts) != 3 or not all(parts):
        raise DataError(f"{filename!r} is not a composite name of the form <id>_<maskid>_<k>.jpg")
    image_id, mask_id, k = parts
    return image_id, mask_id, k


def make_sample(root: Path, subset: str, filename: str) -> Sample:
    """The three paths of a composite: mask ``<id>_<maskid>.png``, real ``<id>.jpg``."""
    image_id, mask_id, _ = parse_composite_name(filename)
    folder = Path(root) / subset
    return Sample(
        subset=subset,
        name=filename.rpartition(".")[0],
        composite=folder / "composite_images" / filename,
        mask=folder / "masks" / f"{image_id}_{mask_id}.png",
        real=folder / "real_images" / f"{image_id}.jpg",
    )


def ihd_list_path(root: Path, split: str) -> Path:
    return Path(root) / f"IHD_{split}.txt"


def subset_list_path(root: Path, subset: str, split: str) -> Path:
    return Path(root) / subset / f"{subset}_{split}.txt"


def read_list(path: Path) -> list[tuple[int, str]]:
    """Non-blank lines of a list file as (line number, entry)."""
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise DataError(f"{path}: list file missing") from None
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: unreadable list file ({err})") from None
    return [(n, line.strip()) for n, line in enumerate(text.splitlines(), 1) if line.strip()]


def parse_ihd_entry(entry: str) -> tuple[str, str]:
    """``HAdobe5k/composite_images/a0001_1_1.jpg`` -> ("HAdobe5k", "a0001_1_1.jpg")."""
    parts = entry.split("/")
    if len(parts) != 3 or parts[1] != "composite_images" or parts[0] not in SUBSETS:
        raise DataError(
            f"{entry!r} is not of the form <Subset>/composite_images/<file> with <Subset> one "
            f"of {', '.join(SUBSETS)}"
        )
    return parts[0], parts[2]


def check_subsets(subsets: Iterable[str] | None) -> list[str] | None:
    if subsets is None:
        return None
    subsets = list(subsets)
    unknown = [s for s in subsets if s not in SUBSETS]
    if unknown:
        raise DataError(f"unknown subset(s) {unknown}; choose from {', '.join(SUBSETS)}")
    return subsets


def list_samples(root: Path, split: str, subsets: Sequence[str] | None = None) -> list[Sample]:
    """The pairs of one split, in list order.

    Without `subsets`, ``IHD_<split>.txt`` is read; with them, each subset's own list, in the
    order given. Files are not opened here (see `check_root`).
    """
    root = Path(root)
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}; choose from {', '.join(SPLITS)}")
    subsets = check_subsets(subsets)
    samples: list[Sample] = []
    if subsets is None:
        path = ihd_list_path(root, split)
        for lineno, entry in read_list(path):
            try:
                samples.append(make_sample(root, *parse_ihd_entry(entry)))
            except DataError as err:
                raise DataError(f"{path}:{lineno}: {err}") from None
        return samples
    for subset in subsets:
        path = subset_list_path(root, subset, split)
        for lineno, entry in read_list(path):
            try:
                samples.append(make_sample(root, subset, entry))
            except DataError as err:
                raise DataError(f"{path}:{lineno}: {err}") from None
    return samples


# -- reading images -------------------------------------------------------------------------


def open_image(path: Path, decode: bool = True) -> Image.Image:
    """Open an image; with `decode`, decode it fully so that truncation is caught.

    Pillow's ``ImageFile.LOAD_TRUNCATED_IMAGES`` is left at its default (False): a truncated
    file raises here instead of being padded with grey.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file missing")
    image = None
    try:
        image = Image.open(path)
        if decode:
            image.load()
    # any decoder failure (OSError, SyntaxError, zlib errors, decompression bombs, ...) means
    # the file is unusable; say which file
    except Exception as err:
        if image is not None:
            image.close()
        raise DataError(f"{path}: unreadable or truncated image ({err})") from None
    return image


def rgb_array(image: Image.Image) -> np.ndarray:
    """uint8 (H, W, 3) RGB of an opened image."""
    return np.asarray(image.convert("RGB"))


def mask_array(image: Image.Image) -> np.ndarray:
    """bool (H, W) of an opened mask: channel 0 of RGB (or the L band), binarised at > 127."""
    if image.mode not in ("L", "LA", "RGB", "RGBA"):
        image = image.convert("RGB")
    array = np.asarray(image)
    if array.ndim == 3:
        array = array[..., 0]
    return array > 127


def read_image(path: Path) -> np.ndarray:
    """An image file as uint8 (H, W, 3) RGB."""
    with open_image(path) as image:
        return rgb_array(image)


def read_mask(path: Path) -> np.ndarray:
    """A mask file (RGB or L PNG, 0/255) as bool (H, W): channel 0 binarised at > 127."""
    with open_image(path) as image:
        return mask_array(image)


def load_pair(sample: Sample) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(composite uint8 HxWx3, mask bool HxW, real uint8 HxWx3) at full resolution, checked."""
    composite, mask = read_image(sample.composite), read_mask(sample.mask)
    real = read_image(sample.real)
    if mask.shape != composite.shape[:2]:
        raise DataError(
            f"{sample.mask}: mask size {size_str(mask.shape)} differs from composite "
            f"{sample.composite} size {size_str(composite.shape)}"
        )
    if real.shape != composite.shape:
        raise DataError(
            f"{sample.real}: real image size {size_str(real.shape)} differs from composite "
            f"{sample.composite} size {size_str(composite.shape)}"
        )
    if not mask.any():
        raise DataError(f"{sample.mask}: empty mask (no pixel of channel 0 above 127)")
    return composite, mask, real


def size_str(shape: Sequence[int]) -> str:
    return f"{shape[1]}x{shape[0]}"


# -- transforms -----------------------------------------------------------------------------


def resize_image(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bicubic resize of uint8 (H, W, 3) to (width, height) with Pillow (antialiased)."""
    if image.shape[1::-1] == tuple(size):
        return image
    return np.asarray(Image.fromarray(image).resize(size, Image.Resampling.BICUBIC))


def resize_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of a bool (H, W) mask to (width, height).

    If nearest sampling misses a tiny foreground altogether, the foreground is taken as every
    output pixel that the input foreground covers at all, so that a resized mask is never empty.
    """
    if mask.shape[::-1] == tuple(size):
        return mask
    image = Image.fromarray(mask.astype(np.uint8) * 255)
    out = np.asarray(image.resize(size, Image.Resampling.NEAREST)) > 127
    if mask.any() and not out.any():
        out = np.asarray(image.resize(size, Image.Resampling.BOX)) > 0
    return out


def train_transform(
    composite: np.ndarray,
    mask: np.ndarray,
    real: np.ndarray,
    train_size: int,
    load_size: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The paper's training augmentation (Sec. IV-A): resize to load_size x load_size, random
    crop of train_size x train_size, horizontal flip with probability 1/2; the same crop and flip
    for composite, mask and real."""
    if load_size < train_size:
        raise ValueError(f"load_size {load_size} is smaller than train_size {train_size}")
    square = (load_size, load_size)
    composite, real = resize_image(composite, square), resize_image(real, square)
    mask = resize_mask(mask, square)
    top, left = (int(v) for v in rng.integers(0, load_size - train_size + 1, size=2))
    flip = bool(rng.random() < 0.5)
    window = (slice(top, top + train_size), slice(left, left + train_size))
    out = []
    for array in (composite, mask, real):
        array = array[window]
        out.append(array[:, ::-1] if flip else array)
    return out[0], out[1], out[2]


def eval_transform(
    composite: np.ndarray, mask: np.ndarray, real: np.ndarray, size: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The evaluation protocol (DESIGN.md section 4): composite and real resized to size x size
    bicubic, the binarised mask resized nearest."""
    square = (size, size)
    return resize_image(composite, square), resize_mask(mask, square), resize_image(real, square)


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """uint8 (H, W, 3) -> float (3, H, W) in [0, 1]; bool (H, W) -> float (1, H, W) in {0, 1}.

    The conversion is done in numpy: single-threaded, so a loader does not compete with the
    model for torch's intra-op threads.
    """
    array = image[None] if image.ndim == 2 else image.transpose(2, 0, 1)
    array = np.ascontiguousarray(array, dtype=np.float32)
    if image.dtype == np.uint8:
        array /= 255
    return torch.from_numpy(array)


class HarmonyDataset(Dataset):
    """iHarmony4 pairs as tensors.

    An item is ``{"composite": (3,H,W), "mask": (1,H,W), "real": (3,H,W), "subset", "name",
    "index"}``, images float in [0, 1], mask in {0, 1}.

    * ``train_size`` set: the training transform (`train_transform`; ``load_size`` defaults
      to ``train_size``). The crop and flip of item i are drawn from a generator seeded with
      (seed, epoch, i): the same for any worker count and on resume. Call `set_epoch` once per
      epoch.
    * ``eval_size`` set: the evaluation transform (`eval_transform`).
    * neither: full resolution, unchanged.
    """

    def __init__(
        self,
        root: Path,
        split: str = "train",
        subsets: Sequence[str] | None = None,
        *,
        train_size: int | None = None,
        load_size: int | None = None,
        eval_size: int | None = None,
        seed: int = 0,
    ) -> None:
        if train_size is not None and eval_size is not None:
            raise ValueError("give train_size (training transform) or eval_size, not both")
        if load_size is not None and train_size is None:
            raise ValueError("load_size needs train_size")
        self.root, self.split = Path(root), split
        self.samples = list_samples(self.root, split, subsets)
        self.train_size, self.eval_size = train_size, eval_size
        self.load_size = load_size if load_size is not None else train_size
        if self.train_size is not None and self.load_size < self.train_size:
            raise ValueError(f"load_size {self.load_size} is smaller than train_size {train_size}")
        self.seed, self.epoch = seed, 0

    def set_epoch(self, seed: int, epoch: int) -> None:
        """Select the augmentation draws of one epoch."""
        self.seed, self.epoch = seed, epoch

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict:
        sample = self.samples[index]
        composite, mask, real = load_pair(sample)
        if self.train_size is not None:
            rng = np.random.default_rng([self.seed, self.epoch, index])
            composite, mask, real = train_transform(
                composite, mask, real, self.train_size, self.load_size, rng
            )
        elif self.eval_size is not None:
            composite, mask, real = eval_transform(composite, mask, real, self.eval_size)
        return {
            "composite": to_tensor(composite),
            "mask": to_tensor(mask),
            "real": to_tensor(real),
            "subset": sample.subset,
            "name": sample.name,
            "index": index,
        }


# -- validation -----------------------------------------------------------------------------


@dataclass
class _FileInfo:
    size: tuple[int, int] | None = None  # (width, height)
    error: str | None = None
    empty: bool = False


def _inspect(path: Path, is_mask: bool, decode: bool) -> _FileInfo:
    try:
        with open_image(path, decode=decode) as image:
            empty = bool(decode and is_mask and not mask_array(image).any())
            return _FileInfo(size=image.size, empty=empty)
    except DataError as err:
        return _FileInfo(error=str(err))


def _entries(path: Path, problems: list[str]) -> list[tuple[int, str]] | None:
    try:
        entries = read_list(path)
    except DataError as err:
        problems.append(str(err))
        return None
    for entry, n in Counter(e for _, e in entries).items():
        if n > 1:
            problems.append(f"{path}: {entry!r} is listed {n} times")
    return entries


def _check_lists(
    root: Path,
    split: str,
    subsets: list[str] | None,
    present: list[str],
    problems: list[str],
) -> tuple[list[Sample], dict[str, int], int | None]:
    """Problems of one split's lists; its samples, per-subset counts and the IHD total."""
    ihd = ihd_list_path(root, split)
    ihd_files: dict[str, set[str]] = {}
    ihd_total = None
    if ihd.is_file() or subsets is None:
        entries = _entries(ihd, problems)
        if entries is not None:
            ihd_total = len(entries)
            for lineno, entry in entries:
                try:
                    subset, filename = parse_ihd_entry(entry)
                except DataError as err:
                    problems.append(f"{ihd}:{lineno}: {err}")
                    continue
                ihd_files.setdefault(subset, set()).add(filename)
            for subset in sorted(set(ihd_files) - set(present), key=SUBSETS.index):
                if subsets is None:
                    problems.append(
                        f"{ihd}: lists {len(ihd_files[subset])} {subset} pairs, but the subset "
                        f"folder {root / subset} is missing (pass a subset selection to use a "
                        "root that holds only some subsets)"
                    )
    samples: list[Sample] = []
    counts: dict[str, int] = {}
    for subset in present:
        path = subset_list_path(root, subset, split)
        entries = _entries(path, problems)
        if entries is None:
            continue
        counts[subset] = len(entries)
        names = {e for _, e in entries}
        if ihd_total is not None:
            in_ihd = ihd_files.get(subset, set())
            for name in sorted(names - in_ihd):
                problems.append(f"{path}: {name!r} is not in {ihd}")
            for name in sorted(in_ihd - names):
                problems.append(f"{ihd}: '{subset}/composite_images/{name}' is not in {path}")
        for lineno, entry in entries:
            try:
                samples.append(make_sample(root, subset, entry))
            except DataError as err:
                problems.append(f"{path}:{lineno}: {err}")
    return samples, counts, ihd_total


def _check_counts(
    root: Path,
    split: str,
    counts: dict[str, int],
    ihd_total: int | None,
    check_total: bool,
    problems: list[str],
) -> None:
    if check_total and ihd_total is not None and ihd_total != OFFICIAL_TOTALS[split]:
        problems.append(
            f"{ihd_list_path(root, split)}: {ihd_total} {split} pairs, the official iHarmony4 "
            f"{split} split has {OFFICIAL_TOTALS[split]}"
        )
    for subset, n in counts.items():
        expected = OFFICIAL_COUNTS[split][subset]
        if n != expected:
            problems.append(
                f"{subset_list_path(root, subset, split)}: {n} pairs, the official {subset} "
                f"{split} split has {expected}"
            )


def _check_files(samples: list[Sample], decode: bool, progress: bool, problems: list[str]) -> None:
    info: dict[Path, _FileInfo] = {}
    reported: set[Path] = set()

    def inspect(path: Path, is_mask: bool) -> _FileInfo:
        if path not in info:
            info[path] = _inspect(path, is_mask, decode)
        return info[path]

    def report(path: Path, message: str) -> None:
        if path not in reported:
            reported.add(path)
            problems.append(message)

    for sample in tqdm(samples, desc="checking", unit="pair", disable=not progress):
        if not sample.composite.is_file():
            report(sample.composite, f"{sample.composite}: listed composite has no file")
            continue
        composite = inspect(sample.composite, False)
        mask = inspect(sample.mask, True) if sample.mask.is_file() else None
        real = inspect(sample.real, False) if sample.real.is_file() else None
        if mask is None:
            report(sample.mask, f"{sample.mask}: mask of {sample.composite} missing")
        if real is None:
            report(sample.real, f"{sample.real}: real image of {sample.composite} missing")
        for path, found in (
            (sample.composite, composite),
            (sample.mask, mask),
            (sample.real, real),
        ):
            if found is not None and found.error:
                report(path, found.error)
        if mask is not None and mask.empty:
            report(sample.mask, f"{sample.mask}: empty mask (no pixel of channel 0 above 127)")
        if composite.size is None:
            continue
        w, h = composite.size
        if mask is not None and mask.size is not None and mask.size != composite.size:
            problems.append(
                f"{sample.mask}: mask size {mask.size[0]}x{mask.size[1]} differs from composite "
                f"{sample.composite} size {w}x{h}"
            )
        if real is not None and real.size is not None and real.size != composite.size:
            problems.append(
                f"{sample.real}: real image size {real.size[0]}x{real.size[1]} differs from "
                f"composite {sample.composite} size {w}x{h}"
            )


def check_root(
    root: Path,
    splits: Sequence[str] = SPLITS,
    subsets: Sequence[str] | None = None,
    *,
    expect_official_counts: bool = False,
    decode: bool = True,
    progress: bool = False,
) -> list[str]:
    """Every problem of an iHarmony4-layout root, one message each, naming the file.

    Checked: list files present and well formed (no duplicates; IHD lists and per-subset lists
    agree), every listed composite present with its mask and real image, every file readable
    (with `decode`, fully decoded, so truncation is caught; without, only the header is read),
    mask and real of the composite's size, masks not empty (with `decode`), and, with
    `expect_official_counts`, the official split sizes.

    Without `subsets`, the subset folders present are checked; a subset missing entirely is
    allowed unless an IHD list references it. With `subsets`, only those are checked, and the
    IHD lists only where they exist.
    """
    root = Path(root)
    if not root.is_dir():
        return [f"{root}: data root is not a directory"]
    try:
        selection = check_subsets(subsets)
    except DataError as err:
        return [str(err)]
    problems: list[str] = []
    if selection is None:
        present = [s for s in SUBSETS if (root / s).is_dir()]
        if not present:
            problems.append(f"{root}: none of the subset folders {', '.join(SUBSETS)} exists")
    else:
        present = [s for s in selection if (root / s).is_dir()]
        problems += [f"{root / s}: subset folder missing" for s in selection if s not in present]
    samples: list[Sample] = []
    for split in splits:
        if split not in SPLITS:
            problems.append(f"unknown split {split!r}; choose from {', '.join(SPLITS)}")
            continue
        split_samples, counts, ihd_total = _check_lists(root, split, selection, present, problems)
        samples += split_samples
        if expect_official_counts:
            _check_counts(root, split, counts, ihd_total, selection is None, problems)
    _check_files(samples, decode, progress, problems)
    return problems


def require_valid_root(
    root: Path,
    split: str | None = None,
    subsets: list[str] | None = None,
    *,
    decode: bool = False,
) -> None:
    """Raise `DataError` naming the first problems of `root` (`check_root`), if it has any.

    By default only headers are read (quick even on the full dataset): decoding every image is
    the job of ``regionharmony check-data``, run once per dataset version, and the reader raises
    `DataError` naming the file for a file that turns out to be corrupt later.
    """
    problems = check_root(root, splits=[split] if split else SPLITS, subsets=subsets, decode=decode)
    if problems:
        shown = "\n".join(f"  - {p}" for p in problems[:MAX_LISTED_PROBLEMS])
        more = len(problems) - MAX_LISTED_PROBLEMS
        tail = f"\n  ... and {more} more" if more > 0 else ""
        raise DataError(
            f"{root} is not a usable iHarmony4-layout root ({len(problems)} problem(s)):\n"
            f"{shown}{tail}\nRun `regionharmony check-data --data-root {root}` for the full list."
        )


def count_pairs(
    root: Path, splits: Sequence[str] = SPLITS, subsets: Sequence[str] | None = None
) -> dict[str, dict[str, int]]:
    """{split: {subset: pairs}} from the lists the reader would use."""
    counts: dict[str, dict[str, int]] = {}
    for split in splits:
        per_subset = Counter(s.subset for s in list_samples(root, split, subsets))
        counts[split] = {s: per_subset[s] for s in SUBSETS if s in per_subset}
    return counts


def format_counts(counts: dict[str, dict[str, int]]) -> str:
    splits = list(counts)
    subsets = [s for s in SUBSETS if any(s in counts[sp] for sp in splits)]
    lines = [f"{'subset':<12}" + "".join(f"{sp:>8}" for sp in splits)]
    for subset in subsets:
        lines.append(f"{subset:<12}" + "".join(f"{counts[sp].get(subset, 0):>8}" for sp in splits))
    lines.append(f"{'All':<12}" + "".join(f"{sum(counts[sp].values()):>8}" for sp in splits))
    return "\n".join(lines)


def check_main(argv: list[str] | None = None) -> int:
    """`regionharmony check-data`."""
    parser = argparse.ArgumentParser(
        prog="regionharmony check-data",
        description=(
            "Validate an iHarmony4-layout dataset root and list every problem: missing list "
            "files, list entries without a file, composites without mask or real image, "
            "unreadable or truncated images (each image is fully decoded), size mismatches, "
            "empty masks, IHD and per-subset lists that disagree and, on request, split sizes "
            "that differ from the official ones (train 65742 / test 7404). Exits 1 with the "
            "list if there is any problem, 0 with the pair counts per subset and split."
        ),
    )
    parser.add_argument(
        "--data-root", type=Path, required=True, metavar="DIR", help="dataset root to check"
    )
    parser.add_argument(
        "--split", choices=[*SPLITS, "all"], default="all", help="split to check (default: all)"
    )
    parser.add_argument(
        "--subsets",
        nargs="+",
        choices=SUBSETS,
        metavar="SUBSET",
        help="check only these of HCOCO HAdobe5k HFlickr Hday2night, through their own lists "
        "(default: every subset folder present, through IHD_<split>.txt)",
    )
    parser.add_argument(
        "--official-counts",
        action="store_true",
        help="also require the official iHarmony4 split sizes",
    )
    parser.add_argument(
        "--profile",
        help="the pipeline's profile: 'paper' implies --official-counts, any other checks "
        "without counts",
    )
    parser.add_argument(
        "--no-decode",
        action="store_true",
        help="read image headers only (fast; misses truncated files and empty masks)",
    )
    parser.add_argument("--report", type=Path, help="also write the report to this file")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)

    splits = list(SPLITS) if args.split == "all" else [args.split]
    official = args.official_counts or args.profile == "paper"
    problems = check_root(
        args.data_root,
        splits,
        args.subsets,
        expect_official_counts=official,
        decode=not args.no_decode,
        progress=not args.no_progress,
    )
    if problems:
        report = f"{args.data_root}: {len(problems)} problem(s)\n" + "".join(
            f"- {p}\n" for p in problems
        )
    else:
        counts = count_pairs(args.data_root, splits, args.subsets)
        checks = "decoded" if not args.no_decode else "headers read"
        counted = ", official split sizes" if official else ""
        report = (
            f"{args.data_root}: OK (every listed file present, {checks}{counted})\n"
            f"{format_counts(counts)}\n"
        )
    if args.report:
        atomic_write_text(report, args.report)
    (sys.stderr if problems else sys.stdout).write(report)
    return 1 if problems else 0


# -- atomic output directories --------------------------------------------------------------


@contextmanager
def atomic_directory(dest: Path, *, replace: bool = False) -> Iterator[Path]:
    """Yield an empty temporary sibling of `dest` that becomes `dest` when the block succeeds.

    If the block raises, the temporary directory is removed and `dest` is left as it was. An
    existing non-empty `dest` is refused (`FileExistsError`) unless `replace`; it is then
    swapped out only after the new content is complete.
    """
    dest = Path(dest)
    if dest.exists() and not dest.is_dir():
        raise FileExistsError(f"{dest} exists and is not a directory")
    if not replace and dest.is_dir() and any(dest.iterdir()):
        raise FileExistsError(f"{dest} exists and is not empty (pass --force to replace it)")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.tmp-", dir=dest.parent))
    try:
        yield tmp
        tmp.chmod(0o755)  # mkdtemp creates 0700
        if dest.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{dest.name}.old-", dir=dest.parent))
            dest.rename(old / dest.name)
            tmp.rename(dest)
            shutil.rmtree(old)
        else:
            tmp.rename(dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


# -- prepare: a resized copy of a root ------------------------------------------------------


def target_size(
    size: tuple[int, int], longest_side: int | None, square: int | None
) -> tuple[int, int]:
    """(width, height) after `prepare`: a square, or the longest side capped (never enlarged)."""
    if square is not None:
        return square, square
    assert longest_side is not None
    w, h = size
    if max(w, h) <= longest_side:
        return w, h
    scale = longest_side / max(w, h)
    return max(1, round(w * scale)), max(1, round(h * scale))


def _prepare_file(job: tuple[Path, Path, bool, int | None, int | None, int]) -> bool:
    """Write one resized file; return whether it was resized (else copied byte for byte)."""
    src, dst, is_mask, longest_side, square, quality = job
    with open_image(src) as image:
        size = target_size(image.size, longest_side, square)
        if size == image.size:
            shutil.copyfile(src, dst)
            return False
        if is_mask:
            mask = resize_mask(mask_array(image), size).astype(np.uint8) * 255
            Image.fromarray(np.repeat(mask[..., None], 3, axis=2)).save(dst, format="PNG")
        else:
            out = Image.fromarray(resize_image(rgb_array(image), size))
            out.save(dst, format="JPEG", **{**JPEG_SETTINGS, "quality": quality})
    return True


def prepare_root(
    src: Path,
    dst: Path,
    *,
    longest_side: int | None = None,
    square: int | None = None,
    subsets: Sequence[str] | None = None,
    quality: int = 95,
    workers: int = 1,
    force: bool = False,
    progress: bool = True,
) -> dict[str, int]:
    """Write a resized copy of `src` at `dst` in the same layout (the resize cache of
    DESIGN.md section 3).

    Composites and reals are resized bicubic and saved as JPEG (`quality`, 4:4:4 chroma), masks
    binarised, resized nearest and saved as RGB PNG 0/255. With `longest_side`, images whose
    longest side is at most that are copied byte for byte; with `square`, every image becomes
    square x square. Lists are copied; with `subsets`, the IHD lists keep only those subsets'
    lines. `dst` appears only when complete (temporary sibling, then rename).
    Returns counts: files resized, copied, lists written and unlisted files left out.
    """
    if (longest_side is None) == (square is None):
        raise ValueError("give exactly one of longest_side and square")
    if (longest_side or square or 0) < 1:
        raise ValueError("the target size must be positive")
    src, dst = Path(src), Path(dst)
    selection = check_subsets(subsets)
    require_valid_root(src, subsets=selection)
    chosen = selection or [s for s in SUBSETS if (src / s).is_dir()]

    jobs: dict[Path, bool] = {}  # source file -> is a mask
    for split in SPLITS:
        for sample in list_samples(src, split, chosen):
            jobs.setdefault(sample.composite, False)
            jobs.setdefault(sample.mask, True)
            jobs.setdefault(sample.real, False)
    stats = {"resized": 0, "copied": 0, "lists": 0, "unlisted": 0}
    for subset in chosen:
        for folder in ("composite_images", "masks", "real_images"):
            stats["unlisted"] += sum(1 for p in (src / subset / folder).iterdir() if p not in jobs)

    with atomic_directory(dst, replace=force) as tmp:
        for subset in chosen:
            for folder in ("composite_images", "masks", "real_images"):
                (tmp / subset / folder).mkdir(parents=True)
            for split in SPLITS:
                shutil.copyfile(
                    subset_list_path(src, subset, split), subset_list_path(tmp, subset, split)
                )
                stats["lists"] += 1
        for split in SPLITS:
            ihd = ihd_list_path(src, split)
            if not ihd.is_file():
                print(f"note: {ihd} does not exist; the copy has none either", file=sys.stderr)
                continue
            lines = [e for _, e in read_list(ihd) if e.split("/")[0] in chosen]
            ihd_list_path(tmp, split).write_text("".join(f"{line}\n" for line in lines))
            stats["lists"] += 1
        tasks = [
            (path, tmp / path.relative_to(src), is_mask, longest_side, square, quality)
            for path, is_mask in jobs.items()
        ]
        bar = tqdm(total=len(tasks), desc="prepare", unit="file", disable=not progress)
        if workers > 1:
            with ProcessPoolExecutor(workers) as pool:
                results = pool.map(_prepare_file, tasks, chunksize=16)
                for resized in results:
                    stats["resized" if resized else "copied"] += 1
                    bar.update()
        else:
            for task in tasks:
                stats["resized" if _prepare_file(task) else "copied"] += 1
                bar.update()
        bar.close()
    return stats


def prepare_main(argv: list[str] | None = None) -> int:
    """`regionharmony prepare`."""
    parser = argparse.ArgumentParser(
        prog="regionharmony prepare",
        description=(
            "Write a resized copy of an iHarmony4-layout root in the same layout, so that "
            "training does not decode the full-size originals (HAdobe5k: up to 6048 px) every "
            "epoch. Composites and reals: bicubic, JPEG; masks: binarised, nearest, PNG 0/255. "
            "List files are copied. The output appears only when complete."
        ),
    )
    parser.add_argument(
        "--data-root", type=Path, required=True, metavar="SRC", help="source dataset root"
    )
    parser.add_argument(
        "--out", type=Path, required=True, metavar="DST", help="directory to create"
    )
    size = parser.add_mutually_exclusive_group(required=True)
    size.add_argument(
        "--longest-side",
        type=int,
        help="shrink images whose longest side exceeds this, keeping the aspect ratio "
        "(smaller images are copied unchanged)",
    )
    size.add_argument("--square", type=int, help="resize every image to SQUARE x SQUARE")
    parser.add_argument(
        "--subsets",
        nargs="+",
        choices=SUBSETS,
        metavar="SUBSET",
        help="copy only these of HCOCO HAdobe5k HFlickr Hday2night (default: all present)",
    )
    parser.add_argument("--quality", type=int, default=95, help="JPEG quality (default: 95)")
    parser.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        help="parallel processes (default: the number of CPUs)",
    )
    parser.add_argument("--force", action="store_true", help="replace an existing --out")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    try:
        stats = prepare_root(
            args.data_root,
            args.out,
            longest_side=args.longest_side,
            square=args.square,
            subsets=args.subsets,
            quality=args.quality,
            workers=args.workers,
            force=args.force,
            progress=not args.no_progress,
        )
    except (DataError, FileExistsError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(
        f"{args.out}: {stats['resized']} files resized, {stats['copied']} copied unchanged, "
        f"{stats['lists']} list files written"
    )
    if stats["unlisted"]:
        print(f"{stats['unlisted']} files in {args.data_root} that no list names were not copied")
    return 0
