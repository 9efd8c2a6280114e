"""Saved result images of any method, scored under this repository's protocol (`evaluate
--predictions DIR`): found by the pairing list's names, checked to be all there and readable at
a size the protocol accepts before anything is scored, and fingerprinted (a content digest) so
that a metrics.json says which outputs it scored.

A pair `<subset>/composite_images/<name>.jpg` of the list is found in DIR as, in this order,
`<subset>/composite_images/<name>.EXT`, `<subset>/<name>.EXT`, `images/<subset>/<name>.EXT`
(what `evaluate --save-images` writes) or `<name>.EXT`, EXT one of .jpg .jpeg .png (either case).
A prediction is at the composite's own size or already SIZE x SIZE; it is resized to SIZE x SIZE
bicubic, as the composite and the real image are.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset

from regionharmony.data.dataset import HarmonyDataset, to_tensor
from regionharmony.data.images import open_image, resize_image, rgb_array
from regionharmony.data.layout import Sample
from regionharmony.errors import DataError

EXTENSIONS = (".jpg", ".jpeg", ".png", ".JPG", ".JPEG", ".PNG")
LAYOUTS = (
    "{subset}/composite_images/{name}",
    "{subset}/{name}",
    "images/{subset}/{name}",
    "{name}",
)
SHOWN = 3  # names a refusal lists


def layouts_help() -> str:
    return ", ".join(f"DIR/{layout}.EXT" for layout in LAYOUTS) + " (EXT .jpg, .jpeg or .png)"


def find(folder: Path, sample: Sample) -> Path | None:
    for layout in LAYOUTS:
        stem = folder / layout.format(subset=sample.subset, name=sample.name)
        for ext in EXTENSIONS:
            path = stem.with_name(stem.name + ext)
            if path.is_file():
                return path
    return None


def header_size(path: Path) -> tuple[int, int] | None:
    """(width, height) from the file's header, None where it is not an image."""
    try:
        with Image.open(path) as image:
            return image.size
    except (OSError, UnidentifiedImageError, ValueError):
        return None


@dataclass
class PredictionSet:
    """The predictions DIR holds for a split: by dataset index, with what could not be used."""

    folder: Path
    found: dict[int, Path]
    listed: int
    missing: list[str]
    unreadable: list[str]
    wrong_size: list[str]

    @property
    def coverage(self) -> float:
        return len(self.found) / self.listed if self.listed else 0.0

    def digest(self) -> str:
        """sha256 over the scored files' relative paths and bytes, in list order."""
        total = hashlib.sha256()
        for path in self.found.values():
            total.update(str(path.relative_to(self.folder)).encode() + b"\0")
            total.update(hashlib.sha256(path.read_bytes()).digest())
        return total.hexdigest()

    def require_complete(self, allow_missing: bool) -> None:
        """One line naming what is wrong (count and first names), or nothing. Unreadable and
        wrong-size files are refused always; missing ones only without `allow_missing`."""
        problems = [(self.unreadable, "unreadable"), (self.wrong_size, "of the wrong size")]
        if not allow_missing:
            problems.insert(0, (self.missing, "missing"))
        parts = [
            f"{len(names)} {what} (first: {', '.join(names[:SHOWN])})"
            for names, what in problems
            if names
        ]
        if not self.found and not parts:
            parts = [f"none of the {self.listed} listed pairs found"]
        if parts:
            hint = "; --allow-missing scores those found" if self.missing else ""
            hint = "" if allow_missing else hint
            raise DataError(
                f"{self.folder}: {'; '.join(parts)} of {self.listed} listed predictions "
                f"(layouts: {layouts_help()}){hint}"
            )


def scan(folder: Path, samples: Sequence[tuple[int, Sample]], size: int) -> PredictionSet:
    """Find the prediction of each listed pair ((dataset index, sample)) and check its header:
    readable, and at the composite's size or SIZE x SIZE."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"--predictions {folder}: no such folder")
    found, missing, unreadable, wrong = {}, [], [], []
    for index, sample in samples:
        label = f"{sample.subset}/{sample.name}"
        path = find(folder, sample)
        if path is None:
            missing.append(label)
            continue
        got = header_size(path)
        if got is None:
            unreadable.append(str(path.relative_to(folder)))
            continue
        expected = header_size(sample.composite)
        if got not in (expected, (size, size)):
            wrong.append(f"{path.relative_to(folder)} {got[0]}x{got[1]}")
            continue
        found[index] = path
    return PredictionSet(folder, found, len(samples), missing, unreadable, wrong)


class PredictedPairs(Dataset):
    """The evaluation items (`dataset`, built with `eval_size` = `size`) of the pairs with a
    prediction, each with its "prediction" tensor resized as the composite is."""

    def __init__(self, dataset: HarmonyDataset, predictions: PredictionSet, size: int) -> None:
        self.dataset, self.predictions, self.size = dataset, predictions, size
        self.indices = list(predictions.found)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, position: int) -> dict:
        index = self.indices[position]
        path = self.predictions.found[index]
        try:
            with open_image(path) as image:
                prediction = rgb_array(image)
        except DataError as err:
            raise DataError(f"{path}: unreadable prediction ({err})") from None
        square = (self.size, self.size)
        if prediction.shape[:2] != square[::-1]:
            prediction = resize_image(prediction, square)  # as `eval_transform` the composite
        return {**self.dataset[index], "prediction": to_tensor(np.ascontiguousarray(prediction))}
