"""Reading and resizing the images of a pair: composites and reals as uint8 RGB, masks as bool.

Pillow's ``ImageFile.LOAD_TRUNCATED_IMAGES`` is left at its default (False): a truncated file
raises `DataError` naming it instead of being padded with grey.

Large images: Pillow warns about an image of more than ``PIL.Image.MAX_IMAGE_PIXELS`` pixels
(89 megapixels by default) with a multi-line DecompressionBombWarning ("could be decompression
bomb DOS attack") and refuses one of more than twice that. Here (and for `harmonize`'s inputs,
`inference.user_images`) the warning is replaced by one line of ours (`warn_if_large`, logged
once per file on the ``regionharmony.images`` logger) naming the file and its pixel count; the
refusal stays a one-line error naming the file.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from regionharmony.data.layout import Sample
from regionharmony.errors import DataError

log = logging.getLogger("regionharmony.images")
_warned_large: set[str] = set()  # the files warned about already (once per file and process)


@contextlib.contextmanager
def large_image_guard() -> Iterator[None]:
    """Pillow's DecompressionBombWarning silenced inside: the caller says it with
    `warn_if_large` (Pillow's DecompressionBombError, over twice the limit, still raises)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        yield


def warn_if_large(size: tuple[int, int], label: str | Path) -> bool:
    """Log one line naming `label` when an image of `size` (width, height) is over Pillow's
    warning limit ``PIL.Image.MAX_IMAGE_PIXELS`` (None: no limit); once per file. Returns
    whether the image is over the limit."""
    limit = Image.MAX_IMAGE_PIXELS
    width, height = size
    pixels = max(1, width) * max(1, height)
    if limit is None or pixels <= limit:
        return False
    if str(label) not in _warned_large:
        _warned_large.add(str(label))
        log.warning(
            "%s: large image, %dx%d = %s pixels (over Pillow's %s-pixel warning limit): "
            "reading it takes much memory and time",
            label,
            width,
            height,
            f"{pixels:,}",
            f"{limit:,}",
        )
    return True


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
        with large_image_guard():
            image = Image.open(path)
            warn_if_large(image.size, path)
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


def resize_binary_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
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
