"""regionharmony.harmonize, what comes out and what it costs: the PNG writer (lossless, readable
by Pillow), the numpy network path and the paste (the same bits as the torch path they replace),
strategy ``full`` refused when it would not fit in memory, and what --help says of the
strategies."""

from __future__ import annotations

import argparse
import io
import struct
import zlib

import numpy as np
import pytest
from harmonize_helpers import make_pair, single_image_args, write_pair
from PIL import Image

from regionharmony.errors import HarmonizeError
from regionharmony.inference import memory, png
from regionharmony.inference.harmonize import add_arguments, harmonize, main
from regionharmony.inference.strategies import harmonize_arrays, paste, run_network

# -- the PNG writer --------------------------------------------------------------------------


def idat_stream(data: bytes) -> bytes:
    """The concatenated IDAT payload of a PNG file."""
    position, stream = 8, b""
    while position < len(data):
        length, kind = struct.unpack(">I4s", data[position : position + 8])
        if kind == b"IDAT":
            stream += data[position + 8 : position + 8 + length]
        position += 12 + length
    return stream


@pytest.mark.parametrize("shape", [(1, 1, 3), (2, 5), (37, 53, 3), (300, 401)])
@pytest.mark.parametrize("threads", [1, 3])
def test_png_writer_is_lossless_in_one_or_several_slices(shape, threads, monkeypatch):
    monkeypatch.setattr(png, "SLICE_BYTES", 700)  # several slices even for a small image
    image = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    handle = io.BytesIO()
    png.write_png(handle, image, threads=threads)
    data = handle.getvalue()
    decoded = Image.open(io.BytesIO(data))
    assert decoded.mode == ("L" if len(shape) == 2 else "RGB")
    assert np.array_equal(np.asarray(decoded), image)
    # zlib checks the Adler-32 combined from the slices'; each slice starts unfiltered
    raw = np.frombuffer(zlib.decompress(idat_stream(data)), np.uint8)
    filters = raw.reshape(shape[0], 1 + image[0].size)[:, 0]
    step = max(1, 700 // image[0].size)
    assert set(filters[::step]) == {png.NONE} and set(
        np.delete(filters, slice(None, None, step))
    ) <= {png.UP}


def test_rows_compressed_ahead_give_the_same_bytes(monkeypatch):
    """The command compresses the rows outside the mask before the result exists: the file is
    the one write_png makes of the result; a wrong guess is compressed again, not kept."""
    monkeypatch.setattr(png, "SLICE_BYTES", 2000)
    composite, mask = make_pair(97, 131)
    result = composite.copy()
    result[mask] = 255 - result[mask]
    expected = io.BytesIO()
    png.write_png(expected, result)
    rows = np.flatnonzero(mask.any(1))
    for guess in (slice(rows[0], rows[-1] + 1), slice(rows[0] + 10, rows[-1] - 10)):
        encoder = png.encoder_ahead(composite, guess)
        assert len(encoder.pending) >= 2  # some slices started before the result
        got = io.BytesIO()
        encoder.write(got, result)
        assert got.getvalue() == expected.getvalue()


def test_adler32_combine_is_zlibs():
    rng = np.random.default_rng(3)
    for a_len, b_len in ((0, 5), (1, 70000), (65521, 3), (200000, 131072)):
        a, b = rng.bytes(a_len), rng.bytes(b_len)
        combined = png.adler32_combine(zlib.adler32(a), zlib.adler32(b), len(b))
        assert combined == zlib.adler32(a + b)


def test_png_writer_refuses_what_it_cannot_write():
    for bad in (np.zeros((4, 4), np.uint16), np.zeros((4, 4, 4), np.uint8)):
        with pytest.raises(ValueError, match="write_png takes"):
            png.write_png(io.BytesIO(), bad)


def test_saved_png_is_as_small_as_pillows(tmp_path):
    """On a smooth image (what a photograph is, row to row) the Up filter at level 1 stays
    within 10 % of Pillow's adaptive filter at its level 1."""
    y, x = np.mgrid[0:240, 0:320]
    image = np.stack([x % 256, y % 256, (x + y) // 3 % 256], -1).astype(np.uint8)
    image = np.clip(image + np.random.default_rng(1).integers(0, 4, image.shape), 0, 255)
    ours, pillows = io.BytesIO(), io.BytesIO()
    png.write_png(ours, image.astype(np.uint8))
    Image.fromarray(image.astype(np.uint8)).save(pillows, format="PNG", compress_level=1)
    assert len(ours.getvalue()) <= 1.1 * len(pillows.getvalue())


# -- the same bits as the torch path -------------------------------------------------------------


def test_run_network_gives_the_bits_of_the_torch_blend(random_engine):
    from regionharmony.data.dataset import to_tensor
    from regionharmony.model.harmonizer import blend

    composite, mask = make_pair(40, 56, seed=3)
    comp_t, mask_t = to_tensor(composite)[None], to_tensor(mask)[None]
    expected = blend(random_engine(comp_t, mask_t), comp_t, mask_t)[0].permute(1, 2, 0).numpy()
    got = run_network(random_engine, composite, mask)
    assert got.dtype == np.float32 and np.array_equal(got, expected)
    assert np.abs(got - composite / 255).max() > 0.01  # the network changed something


def test_paste_quantises_as_before():
    composite, mask = make_pair(40, 56, seed=3)
    foreground = np.random.default_rng(2).normal(0.5, 0.4, (int(mask.sum()), 3)).astype(np.float32)
    expected = composite.copy()
    expected[mask] = np.round(np.clip(foreground, 0, 1) * 255).astype(np.uint8)
    assert np.array_equal(paste(foreground.copy(), composite, mask), expected)


# -- strategy full and the memory it needs -----------------------------------------------------


def test_full_is_refused_in_one_line_when_it_would_not_fit(
    random_engine, random_model_dir, tmp_path, capsys, monkeypatch
):
    composite, mask = make_pair(97, 131)
    needed = memory.full_strategy_bytes(112 * 144, random_engine.base_width)  # padded to 16
    monkeypatch.setattr(memory, "available_memory", lambda: needed - 1)
    with pytest.raises(HarmonizeError, match=r"--strategy full on a 131x97 composite needs") as err:
        harmonize_arrays(composite, mask, random_engine, strategy="full")
    assert "free" in str(err.value) and "\n" not in str(err.value)
    harmonize_arrays(
        composite, mask, random_engine, strategy="color"
    )  # the default is not affected
    monkeypatch.setattr(memory, "available_memory", lambda: needed)
    harmonize_arrays(composite, mask, random_engine, strategy="full")  # just fits: runs
    # the command: one line, nothing written
    monkeypatch.setattr(memory, "available_memory", lambda: 10**6)
    comp_path, mask_path = write_pair(tmp_path, "a", 97, 131)
    out = tmp_path / "o.png"
    argv = single_image_args(random_model_dir, comp_path, mask_path, out)
    assert main([*argv, "--strategy", "full"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: --strategy full on a 131x97 composite") and err.count("\n") == 1
    assert not out.exists()


def test_the_estimate_for_the_issues_composite():
    """4992 x 3328 (16.6 megapixels): ~10 GB with the mini model, ~27 GB with the paper's."""
    pixels = 4992 * 3328
    assert 9e9 < memory.full_strategy_bytes(pixels, 8) < 11e9
    assert 25e9 < memory.full_strategy_bytes(pixels, 32) < 29e9


def test_available_memory_reads_meminfo_and_the_cgroup_limit(tmp_path, monkeypatch):
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal: 8000000 kB\nMemAvailable:    4000000 kB\n")
    cgroup = tmp_path / "cgroup"
    cgroup.mkdir()
    monkeypatch.setattr(memory, "MEMINFO", meminfo)
    monkeypatch.setattr(memory, "CGROUP", cgroup)
    assert memory.available_memory() == 4000000 * 1024  # no cgroup files: meminfo alone
    (cgroup / "memory.max").write_text("max\n")
    assert memory.available_memory() == 4000000 * 1024
    (cgroup / "memory.max").write_text(f"{2 * 2**30}\n")
    (cgroup / "memory.current").write_text(f"{2**30}\n")
    assert memory.available_memory() == 2**30  # the container's limit is the smaller


def test_help_says_what_each_strategy_is_for():
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    text = " ".join(parser.format_help().split())
    for words in ("color (default)", "residual:", "full:", "refused when it would not fit"):
        assert words in text, words


def test_a_small_image_runs_full_without_a_memory_check(random_engine, monkeypatch):
    """At or below the working size every strategy is the network at the image's own size."""
    monkeypatch.setattr(memory, "available_memory", lambda: 0)
    composite, mask = make_pair(21, 27)
    out = harmonize(composite, mask, random_engine, strategy="full")
    assert np.asarray(out).shape == (21, 27, 3)
