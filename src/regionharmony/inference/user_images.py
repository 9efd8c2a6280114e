"""Images as people have them: reading a composite or a mask (a path, a PIL image or a numpy
array) and writing a result.

EXIF orientation is applied; palette, grayscale, 16-bit, RGBA/LA (alpha dropped) and CMYK
images are converted to 8-bit RGB. A numpy array is bool, uint8 (0-255), uint16 (0-65535) or
float in [0, 1]: a float array with values outside [0, 1] (beyond half an 8-bit level of
rounding) is refused, not clipped, since a float array in 0-255 would otherwise come out nearly
white. A mask is any single-channel or RGB(A) image; a pixel is
foreground when its 8-bit grayscale value (ITU-R 601 luma, PIL's "L") is above
``MASK_THRESHOLD`` = 127; a mask whose alpha channel is not fully opaque (a cut-out) uses the
alpha channel instead; a soft mask's grey levels are cut at that threshold, not blended. Bad
input (a missing or unreadable file, a symlink loop, ...) raises `HarmonizeError` (a
ValueError) naming the file. An image over Pillow's decompression-bomb warning limit
(``PIL.Image.MAX_IMAGE_PIXELS``, 89 megapixels) is read with a one-line warning of ours naming
it and its pixel count (`regionharmony.data.images.warn_if_large`); one over twice that
limit is refused, in one line, as Pillow refuses it. A file of several frames (an animated GIF,
PNG or WebP, a multi-page TIFF) is read as its first frame, with a one-line warning naming it.
A greyscale composite (mode L, LA, I;16, ..., or RGB with three equal channels) is reported by
`is_greyscale`; `regionharmony.harmonize` then returns a greyscale result.

Results are written atomically (`regionharmony.io.atomic_write`: a hidden temporary
``.NAME.PID.tmp`` beside the result, renamed over it) and never over an input. A run that is
killed (SIGKILL, out of memory) cannot remove its temporary; `remove_stale_temporaries` removes
those of a process that is no longer running, and the command calls it before it writes.
"""

from __future__ import annotations

import errno
import os
import re
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image, ImageOps

from regionharmony.data.images import large_image_guard, log, warn_if_large
from regionharmony.errors import HarmonizeError

if TYPE_CHECKING:
    from regionharmony.inference.png import PngEncoder

MASK_THRESHOLD = 127  # foreground: 8-bit grayscale value > 127
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
OUTPUT_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".tif": "TIFF", ".tiff": "TIFF"}
OUTPUT_FORMATS[".webp"] = "WEBP"
# JPEG: quality 95, no chroma subsampling. PNG: not Pillow's encoder but
# `regionharmony.inference.png` (Up filter, zlib level 1 on every core): 0.34 s against
# Pillow's 0.79 s at compress_level 1 for 16.6 megapixels, a file of the same size, the same
# pixels
SAVE_OPTIONS: dict[str, dict[str, Any]] = {"JPEG": {"quality": 95, "subsampling": 0}}

ImageSource = str | os.PathLike | Image.Image | np.ndarray
# a float array may overshoot [0, 1] by less than half an 8-bit level (rounding): it quantises
# to 0 or 255 all the same; anything further out is refused
FLOAT_SLACK = 0.5 / 255
# the temporary name of regionharmony.io.atomic_write: .NAME.PID.tmp
TEMP_NAME = re.compile(r"^\.(?P<name>.+)\.(?P<pid>[0-9]{1,10})\.tmp$")
PROBE_PREFIX = ".harmonize-write-check."  # check_output_folder's probe (a TEMP_NAME too)


def label_of(source: ImageSource, role: str) -> str:
    return str(source) if isinstance(source, str | os.PathLike) else role


def check_not_a_symlink_loop(path: str | os.PathLike, role: str) -> None:
    """HarmonizeError naming `path` when it (or a folder on the way to it) is a symlink loop."""
    try:
        os.stat(path)
    except OSError as err:
        if err.errno == errno.ELOOP:
            raise HarmonizeError(
                f"{path}: symlink loop (too many levels of symbolic links) ({role})"
            ) from None
    except ValueError:  # an embedded NUL byte: not a path the system can open
        raise HarmonizeError(f"{path!r}: not a valid path ({role})") from None


def resolved(path: Path, role: str) -> Path:
    """`path.resolve()`, with a symlink loop as a HarmonizeError naming it (Python 3.11 raises
    RuntimeError, 3.13 OSError)."""
    check_not_a_symlink_loop(path, role)
    try:
        return path.resolve()
    except (OSError, RuntimeError) as err:
        raise HarmonizeError(f"{path}: cannot resolve the path ({err}) ({role})") from None


def open_user_image(source: ImageSource, role: str) -> Image.Image:
    """A decoded PIL image with its EXIF orientation applied."""
    label = label_of(source, role)
    if isinstance(source, np.ndarray):
        return Image.fromarray(_array_to_uint8(source, label))
    if not isinstance(source, Image.Image):
        check_not_a_symlink_loop(source, role)
    if not isinstance(source, Image.Image) and not Path(source).is_file():
        raise HarmonizeError(f"{label}: no such file ({role})")
    try:
        with large_image_guard():
            if isinstance(source, Image.Image):
                image = source
            else:
                image = Image.open(source)
                warn_if_large(image.size, label)
                warn_if_animated(image, label, role)
            image.load()
    # any decoder failure (OSError, SyntaxError, zlib errors, decompression bombs, ...)
    except Exception as err:
        raise HarmonizeError(f"{label}: unreadable {role} image ({err})") from None
    try:
        if image is source:  # the caller's image: never changed
            return ImageOps.exif_transpose(image)
        # one we opened is turned in place: a copy of 16 megapixels costs 30 ms
        ImageOps.exif_transpose(image, in_place=True)
        return image
    except Exception as err:
        raise HarmonizeError(f"{label}: bad EXIF orientation ({err})") from None


def warn_if_animated(image: Image.Image, label: str, role: str) -> None:
    """One line on stderr (the `regionharmony.images` logger) when `image` has several frames
    (an animated GIF, PNG or WebP, a multi-page TIFF): only its first frame is harmonised."""
    frames = getattr(image, "n_frames", 1)
    if frames > 1:
        log.warning(
            "%s: %s with %d frames: only the first frame is used as the %s",
            label,
            "animated GIF" if image.format == "GIF" else f"{image.format} image",
            frames,
            role,
        )


def _array_to_uint8(array: np.ndarray, label: str) -> np.ndarray:
    """uint8 (H, W) or (H, W, C) from a bool, uint8, uint16 or float array.

    A float array must hold values in [0, 1] (up to `FLOAT_SLACK` of rounding either side);
    one outside is refused rather than clipped: a float array in 0-255 is the usual mistake."""
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (1, 3, 4)):
        raise HarmonizeError(
            f"{label}: expected an (H, W), (H, W, 3) or (H, W, 4) array, got shape {array.shape}"
        )
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]
    if array.dtype == bool:
        return array.astype(np.uint8) * 255
    if array.dtype == np.uint8:
        return np.ascontiguousarray(array)
    if array.dtype == np.uint16:
        return _scale_16_bit(array)
    if np.issubdtype(array.dtype, np.floating):
        if not np.isfinite(array).all():
            raise HarmonizeError(f"{label}: the array holds NaN or infinite values")
        low, high = float(array.min(initial=0.0)), float(array.max(initial=0.0))
        if low < -FLOAT_SLACK or high > 1 + FLOAT_SLACK:
            raise HarmonizeError(
                f"{label}: float array with values from {low:g} to {high:g}; a float array "
                "must be in [0, 1] (for 0-255 values pass a uint8 array, or divide by 255)"
            )
        return np.round(np.clip(array, 0, 1) * 255).astype(np.uint8)
    raise HarmonizeError(
        f"{label}: unsupported array type {array.dtype} "
        "(use uint8, uint16, bool or float in [0, 1])"
    )


def _scale_16_bit(array: np.ndarray) -> np.ndarray:
    return np.round(array.astype(np.float64) / 257).astype(np.uint8)


def _to_8_bit(image: Image.Image) -> Image.Image:
    """16- and 32-bit single-band images (PNG "I;16", "I", "F") scaled to mode "L"."""
    if image.mode.startswith("I;16") or image.mode == "I":
        array = np.asarray(image).astype(np.int64)
        if image.mode == "I" and array.max(initial=0) <= 255:
            return Image.fromarray(np.clip(array, 0, 255).astype(np.uint8))
        return Image.fromarray(_scale_16_bit(np.clip(array, 0, 65535)))
    if image.mode == "F":
        array = np.asarray(image)
        scale = 255.0 if array.max(initial=0) <= 1.0 else 1.0
        return Image.fromarray(np.round(np.clip(array * scale, 0, 255)).astype(np.uint8))
    return image


def load_composite(source: ImageSource) -> np.ndarray:
    """uint8 (H, W, 3) RGB of a composite (path, PIL image or array); alpha is dropped."""
    image = _to_8_bit(open_user_image(source, "composite"))
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode != "RGB":  # convert() copies even an RGB image: 50 MB at 16 megapixels
        image = image.convert("RGB")
    return np.asarray(image)


def is_greyscale(image: np.ndarray) -> bool:
    """Whether the uint8 (H, W, 3) `image` has three equal channels (a greyscale composite:
    load_composite turns mode L, LA, I;16, ... into such an RGB image)."""
    red, green, blue = image[..., 0], image[..., 1], image[..., 2]
    # a colour photograph differs within a sparse sample already: no pass over every pixel
    step = max(1, int(np.sqrt(red.size / 4096)))
    sample = (slice(None, None, step), slice(None, None, step))
    if not (
        np.array_equal(red[sample], green[sample]) and np.array_equal(red[sample], blue[sample])
    ):
        return False
    return bool(np.array_equal(red, green) and np.array_equal(red, blue))


def load_mask(source: ImageSource) -> np.ndarray:
    """bool (H, W) foreground of a mask (path, PIL image or array): grayscale > 127, or the
    alpha channel > 127 when the image has one that is not fully opaque (a cut-out). A soft
    mask is cut at half its range (grey 128-255 foreground), not kept soft."""
    image = _to_8_bit(open_user_image(source, "mask"))
    if image.mode in ("P", "PA") or "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA"):
        alpha = np.asarray(image.getchannel("A"))
        if alpha.min() < 255:
            return alpha > MASK_THRESHOLD
    grey = image if image.mode == "L" else image.convert("L")
    return np.asarray(grey) > MASK_THRESHOLD


def size_text(shape: tuple[int, ...]) -> str:
    return f"{shape[1]}x{shape[0]}"


def check_pair(
    composite: np.ndarray, mask: np.ndarray, mask_label: str, *, inverted: bool = False
) -> None:
    """A mask the size of the composite, neither empty nor covering the whole image.

    `inverted`: `mask` is the inversion of the file's (``--invert-mask``), and the messages
    say so."""
    if mask.shape != composite.shape[:2]:
        raise HarmonizeError(
            f"{mask_label}: mask size {size_text(mask.shape)} differs from the composite's "
            f"{size_text(composite.shape)}"
        )
    if inverted and not mask.any():
        raise HarmonizeError(
            f"{mask_label}: every pixel of the mask is foreground (above {MASK_THRESHOLD} in "
            "grayscale), so the inverted mask (--invert-mask) is empty: nothing to harmonise"
        )
    if inverted and mask.all():
        raise HarmonizeError(
            f"{mask_label}: no pixel of the mask is foreground (above {MASK_THRESHOLD} in "
            "grayscale), so the inverted mask (--invert-mask) covers the whole image: there is "
            "no foreground to harmonise the background to"
        )
    if not mask.any():
        raise HarmonizeError(
            f"{mask_label}: empty mask (no pixel above {MASK_THRESHOLD} in grayscale): "
            "nothing to harmonise"
        )
    if mask.all():
        raise HarmonizeError(
            f"{mask_label}: the mask covers the whole image: there is no background to "
            "harmonise the foreground to"
        )


# -- writing ----------------------------------------------------------------------------------


def output_format(path: Path) -> str:
    fmt = OUTPUT_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise HarmonizeError(
            f"{path}: unsupported output extension (use one of {sorted(OUTPUT_FORMATS)})"
        )
    return fmt


def same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or (a.exists() and b.exists() and a.samefile(b))
    except (OSError, RuntimeError):  # RuntimeError: a symlink loop (Python < 3.13)
        return False


def pid_running(pid: int) -> bool:
    """Whether a process `pid` exists (on this machine's PID namespace)."""
    if pid < 1:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, run by another user
        return True
    except (OverflowError, OSError):  # not a PID this system can have
        return False
    return True


def remove_stale_temporaries(folder: Path, name: str | None = None) -> list[Path]:
    """Remove the temporaries ``.NAME.PID.tmp`` that a killed run left in `folder`: those of
    an output file (an extension of `OUTPUT_FORMATS`; only ``.{name}.PID.tmp`` when `name` is
    given) or of the write check, whose PID is not a running process or is this process's own
    (this is called before this process writes anything there). Returns the removed paths."""
    removed: list[Path] = []
    try:
        entries = list(os.scandir(folder))
    except OSError:  # no such folder yet, or unreadable: nothing to clean
        return removed
    for entry in entries:
        match = TEMP_NAME.match(entry.name)
        if match is None:
            continue
        target = match["name"]
        if name is not None:
            if target != name:
                continue
        elif not (
            Path(target).suffix.lower() in OUTPUT_FORMATS or entry.name.startswith(PROBE_PREFIX)
        ):
            continue
        pid = int(match["pid"])
        if pid != os.getpid() and pid_running(pid):
            continue  # another run is writing it now
        try:
            if entry.is_file(follow_symlinks=False):
                os.unlink(entry.path)
                removed.append(Path(entry.path))
        except OSError:
            pass  # a read-only folder: the write check reports it
    return removed


def check_output_folder(folder: Path, role: str, *, create: bool = True) -> None:
    """HarmonizeError unless files can be written in `folder`: created when missing (with
    `create`; without, its nearest existing ancestor is checked instead, where the writer will
    create it), then a probe file is made and removed in it."""
    check_not_a_symlink_loop(folder, role)
    if not create:
        while not folder.exists() and not folder.is_symlink() and folder.parent != folder:
            folder = folder.parent
    if folder.exists() and not folder.is_dir():
        raise HarmonizeError(f"{folder}: {role} is not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handle, probe = tempfile.mkstemp(
            prefix=PROBE_PREFIX, suffix=f".{os.getpid()}.tmp", dir=folder
        )
        os.close(handle)
        os.unlink(probe)
    except OSError as err:
        reason = err.strerror or str(err)
        raise HarmonizeError(f"{folder}: cannot write in {role} ({reason})") from None


def save_image(
    image: Image.Image | np.ndarray,
    out: Path,
    inputs: tuple[Path, ...] = (),
    encoder: PngEncoder | None = None,
) -> None:
    """Write `image` (a PIL image or a uint8 RGB / greyscale array) atomically to `out`
    (format from its extension), never over an input. `encoder`: a `png.PngEncoder` for a PNG
    `out` that already compresses the rows known before (the bytes are the same)."""
    from regionharmony.io import atomic_write

    check_not_a_symlink_loop(out, "output")
    for source in inputs:
        if same_file(out, source):
            raise HarmonizeError(f"{out}: refusing to overwrite an input file")
    fmt = output_format(out)
    try:
        atomic_write(out, lambda tmp: _write(image, tmp, fmt, encoder))
    except OSError as err:
        raise HarmonizeError(f"{out}: cannot write ({err})") from None


def _write(
    image: Image.Image | np.ndarray, path: Path, fmt: str, encoder: PngEncoder | None
) -> None:
    if fmt == "PNG" and (isinstance(image, np.ndarray) or image.mode in ("RGB", "L")):
        from regionharmony.cpu_threads import usable_cpus
        from regionharmony.inference.png import PngEncoder

        array = np.ascontiguousarray(np.asarray(image))
        encoder = encoder or PngEncoder(array.shape, threads=usable_cpus())
        with open(path, "wb") as handle:
            encoder.write(handle, array)
        return
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    image.save(path, format=fmt, **SAVE_OPTIONS.get(fmt, {}))
