"""iHarmony4's layout: subsets, splits, file names and list files. Torch-free.

Layout (docs/paper-run.md, 'The dataset: iHarmony4')::

    ROOT/IHD_train.txt, IHD_test.txt          lines "HAdobe5k/composite_images/a0001_1_1.jpg"
    ROOT/<Subset>/<Subset>_train.txt, _test.txt   bare composite file names
    ROOT/<Subset>/composite_images/<id>_<maskid>_<k>.jpg
    ROOT/<Subset>/masks/<id>_<maskid>.png      RGB (or L), 0/255; channel 0 is read
    ROOT/<Subset>/real_images/<id>.jpg

with <Subset> one of HCOCO, HAdobe5k, HFlickr, Hday2night. Names are split on '_' from the
right only, so ids may contain '-' (Hday2night: ``d90000-10_1_3.jpg``) or even '_'.

Which list is read: without a subset selection the union list ``IHD_<split>.txt``; with one,
the per-subset lists ``<Subset>/<Subset>_<split>.txt``. `regionharmony.data.check` verifies that
the two agree wherever both exist, so both readings give the same pairs.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from regionharmony.errors import DataError

__all__ = ["DataError"]  # re-exported: the dataset modules raise it

SUBSETS: tuple[str, ...] = ("HCOCO", "HAdobe5k", "HFlickr", "Hday2night")
SPLITS: tuple[str, ...] = ("train", "test")
# Official iHarmony4 split sizes (DoveNet, CVPR 2020; the paper's Table I).
OFFICIAL_COUNTS: dict[str, dict[str, int]] = {
    "train": {"HCOCO": 38545, "HAdobe5k": 19437, "HFlickr": 7449, "Hday2night": 311},
    "test": {"HCOCO": 4283, "HAdobe5k": 2160, "HFlickr": 828, "Hday2night": 133},
}
OFFICIAL_TOTALS: dict[str, int] = {split: sum(c.values()) for split, c in OFFICIAL_COUNTS.items()}
MINI_MANIFEST = "make_mini.json"  # written by make-mini into its root: marks the embedded dataset
JPEG_SETTINGS = {"quality": 95, "subsampling": 0, "optimize": False, "progressive": False}


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


def find_sample(root: Path, key: str) -> Sample:
    """The pair named ``<Subset>/<composite stem>`` (as evaluation images are named)."""
    subset, sep, stem = key.partition("/")
    if not sep or subset not in SUBSETS:
        raise DataError(f"{key!r} is not of the form <Subset>/<composite stem>")
    return make_sample(root, subset, f"{stem}.jpg")
