"""A fast lossless PNG writer for 8-bit RGB and greyscale results.

Why not Pillow's: Pillow's PNG encoder tries all five row filters on every row and keeps the
best (libpng's heuristic) at every compression level, and that search, not zlib, is most of
its time: 1.1 s for a 16.6-megapixel RGB image at ``compress_level=1``, 0.7 s even at level 0
(stored, 48 MB). Here every row gets the "Up" filter (the row minus the row above, one numpy
subtraction for the whole image; on photographs it compresses within a few percent of the
adaptive choice), and zlib level 1 compresses it on every usable core: the filtered rows are
cut into one slice per core, each slice a raw-deflate stream ended by a sync flush (a byte-aligned
block boundary, so the slices concatenate into one valid deflate stream: what pigz does), and
``zlib`` releases the GIL while it compresses. The file is a plain PNG (IHDR, one IDAT, IEND)
that any decoder reads back to the same pixels.
"""

from __future__ import annotations

import struct
import zlib
from concurrent.futures import ThreadPoolExecutor
from typing import BinaryIO

import numpy as np

SIGNATURE = b"\x89PNG\r\n\x1a\n"
LEVEL = 1  # zlib level: the fastest; the pixels are the same at any level
UP = 2  # PNG filter type "Up"
MIN_SLICE = 4 << 20  # bytes: below this, one thread (a thread's start costs more than it saves)
COLOUR_TYPES = {1: 0, 3: 2}  # channels -> PNG colour type (greyscale, truecolour)


def _write_chunk(handle: BinaryIO, kind: bytes, data: bytes) -> None:
    crc = zlib.crc32(data, zlib.crc32(kind))  # over the type and the data, not the length
    handle.write(struct.pack(">I", len(data)) + kind)
    handle.write(data)
    handle.write(struct.pack(">I", crc))


def up_filtered(image: np.ndarray) -> np.ndarray:
    """(H, 1 + W * C) uint8: each row's filter byte (Up) and its difference to the row above
    (modulo 256, as PNG defines it; the first row is differenced against zeros)."""
    height = image.shape[0]
    rows = image.reshape(height, -1)
    out = np.empty((height, rows.shape[1] + 1), np.uint8)
    out[:, 0] = UP
    out[0, 1:] = rows[0]
    np.subtract(rows[1:], rows[:-1], out=out[1:, 1:])
    return out


def _deflate_slice(data: memoryview, last: bool) -> bytes:
    compressor = zlib.compressobj(LEVEL, zlib.DEFLATED, -15)  # raw deflate: no header
    return compressor.compress(data) + compressor.flush(
        zlib.Z_FINISH if last else zlib.Z_SYNC_FLUSH
    )


def compress(data: memoryview, threads: int) -> bytes:
    """One zlib stream of `data`, compressed in up to `threads` slices at once."""
    count = max(1, min(threads, len(data) // MIN_SLICE))
    bounds = [len(data) * i // count for i in range(count + 1)]
    slices = [data[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]
    lasts = [i == count - 1 for i in range(count)]
    if count == 1:
        parts = [_deflate_slice(slices[0], True)]
    else:
        with ThreadPoolExecutor(count) as pool:
            parts = list(pool.map(_deflate_slice, slices, lasts))
    header = b"\x78\x01"  # deflate, 32 KiB window, level "fastest"; no preset dictionary
    return header + b"".join(parts) + struct.pack(">I", zlib.adler32(data))


def write_png(handle: BinaryIO, image: np.ndarray, threads: int = 1) -> None:
    """Write uint8 (H, W, 3) RGB or (H, W) greyscale `image` to the open binary `handle`."""
    if image.dtype != np.uint8 or image.ndim not in (2, 3):
        raise ValueError(
            f"write_png takes uint8 (H, W) or (H, W, 3), got {image.dtype} {image.shape}"
        )
    channels = 1 if image.ndim == 2 else image.shape[2]
    if channels not in COLOUR_TYPES:
        raise ValueError(f"write_png takes 1 or 3 channels, got {channels}")
    height, width = image.shape[:2]
    header = struct.pack(">IIBBBBB", width, height, 8, COLOUR_TYPES[channels], 0, 0, 0)
    filtered = up_filtered(np.ascontiguousarray(image))
    handle.write(SIGNATURE)
    _write_chunk(handle, b"IHDR", header)
    _write_chunk(handle, b"IDAT", compress(memoryview(filtered).cast("B"), threads))
    _write_chunk(handle, b"IEND", b"")
