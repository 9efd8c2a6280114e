"""The training and evaluation transforms and the `HarmonyDataset` of tensors."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from regionharmony.data.images import load_pair, resize_binary_mask, resize_image
from regionharmony.data.layout import Sample, list_samples

CROPS = ("resized", "resize_then_crop")


def random_resized_window(
    height: int, width: int, min_scale: float, rng: np.random.Generator, attempts: int = 10
) -> tuple[int, int, int, int]:
    """(top, left, h, w) of a random crop covering `min_scale`-1 of the image area with an
    aspect ratio in [3/4, 4/3] (log-uniform), as torchvision / albumentations RandomResizedCrop;
    the whole image when no draw fits."""
    area = height * width
    for _ in range(attempts):
        target = area * rng.uniform(min_scale, 1.0)
        ratio = float(np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3))))
        w, h = round(np.sqrt(target * ratio)), round(np.sqrt(target / ratio))
        if 0 < w <= width and 0 < h <= height:
            top = int(rng.integers(0, height - h + 1))
            left = int(rng.integers(0, width - w + 1))
            return top, left, h, w
    return 0, 0, height, width


def train_transform(
    composite: np.ndarray,
    mask: np.ndarray,
    real: np.ndarray,
    train_size: int,
    rng: np.random.Generator,
    *,
    crop: str = "resized",
    load_size: int | None = None,
    min_scale: float = 0.5,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The training augmentation, "resized to 256x256, random cropped and flipped" (Sec. IV-A),
    the same crop and flip for composite, mask and real.

    * "resized" (the paper profile): the reading of the paper's reference [19], BargainNet
      (bcmi/BargainNet-Image-Harmonization data/base_dataset.py, `--preprocess resize_and_crop`):
      a random crop of `min_scale`-100 % of the image area, aspect 3/4-4/3, resized to
      train_size x train_size (bicubic; the mask nearest), redrawn (up to 10 times) until it
      holds some foreground. The authors' own code (S2AM, S2CRNet) only resizes, so its crop
      would never move.
    * "resize_then_crop": resize to load_size x load_size, then a random train_size crop.

    Then a horizontal flip with probability 1/2.
    """
    if crop == "resize_then_crop":
        load_size = load_size or train_size
        if load_size < train_size:
            raise ValueError(f"load_size {load_size} is smaller than train_size {train_size}")
        square = (load_size, load_size)
        composite, real = resize_image(composite, square), resize_image(real, square)
        mask = resize_binary_mask(mask, square)
        top, left = (int(v) for v in rng.integers(0, load_size - train_size + 1, size=2))
        window = (slice(top, top + train_size), slice(left, left + train_size))
        composite, mask, real = composite[window], mask[window], real[window]
    elif crop == "resized":
        height, width = mask.shape
        for _ in range(10):
            top, left, h, w = random_resized_window(height, width, min_scale, rng)
            if mask[top : top + h, left : left + w].any():
                break
        window = (slice(top, top + h), slice(left, left + w))
        square = (train_size, train_size)
        composite = resize_image(np.ascontiguousarray(composite[window]), square)
        real = resize_image(np.ascontiguousarray(real[window]), square)
        mask = resize_binary_mask(np.ascontiguousarray(mask[window]), square)
    else:
        raise ValueError(f"unknown crop {crop!r}; choose one of {CROPS}")
    if rng.random() < 0.5:
        composite, mask, real = composite[:, ::-1], mask[:, ::-1], real[:, ::-1]
    return composite, mask, real


def eval_transform(
    composite: np.ndarray, mask: np.ndarray, real: np.ndarray, size: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The evaluation protocol (docs/evaluation.md): composite and real resized to size x size
    bicubic, the binarised mask resized nearest."""
    square = (size, size)
    return (
        resize_image(composite, square),
        resize_binary_mask(mask, square),
        resize_image(real, square),
    )


def load_eval_pair(sample: Sample, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One pair as the evaluation protocol sees it: `load_pair`, then `eval_transform`."""
    return eval_transform(*load_pair(sample), size)


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

    * ``train_size`` set: the training transform (`train_transform` with ``crop``,
      ``min_scale`` and ``load_size``, which defaults to ``train_size``). The crop and flip of
      item i are drawn from a generator seeded with (seed, epoch, i): the same for any worker
      count and on resume. The epoch comes with the key (``dataset[epoch, i]``), so persistent
      loader workers need no state from the main process; ``dataset[i]`` uses `set_epoch`'s.
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
        crop: str = "resized",
        min_scale: float = 0.5,
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
        resizes_first = crop == "resize_then_crop"
        if self.train_size is not None and resizes_first and self.load_size < self.train_size:
            raise ValueError(f"load_size {self.load_size} is smaller than train_size {train_size}")
        self.crop, self.min_scale = crop, min_scale
        self.seed, self.epoch = seed, 0

    def set_epoch(self, seed: int, epoch: int) -> None:
        """Select the augmentation draws of one epoch."""
        self.seed, self.epoch = seed, epoch

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, key: int | tuple[int, int]) -> dict:
        epoch, index = key if isinstance(key, tuple) else (self.epoch, key)
        sample = self.samples[index]
        composite, mask, real = load_pair(sample)
        if self.train_size is not None:
            rng = np.random.default_rng([self.seed, epoch, index])
            composite, mask, real = train_transform(
                composite,
                mask,
                real,
                self.train_size,
                rng,
                crop=self.crop,
                load_size=self.load_size,
                min_scale=self.min_scale,
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
