"""Pillow's decompression-bomb warning as one line of ours, and the refusal of an image over
its error limit."""

from __future__ import annotations

import logging
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from PIL import Image

from regionharmony.errors import DataError, HarmonizeError


@pytest.fixture
def small_limit(monkeypatch):
    """Pillow's limit at 100 pixels: a 20 x 8 image (160) warns, a 20 x 12 one (240, over twice
    the limit) is refused."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)


def _write(path: Path, width: int, height: int, mode: str = "RGB") -> Path:
    Image.new(mode, (width, height), 255 if mode == "L" else (200, 10, 10)).save(path)
    return path


def _check_one_warning(caplog, recorded, path: Path, pixels: int) -> None:
    assert not [w for w in recorded if issubclass(w.category, Image.DecompressionBombWarning)]
    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(messages) == 1, messages
    assert str(path) in messages[0] and f"{pixels:,} pixels" in messages[0]
    assert "\n" not in messages[0] and "DOS attack" not in messages[0]


@pytest.mark.parametrize("reader", ["read_image", "read_mask", "open_image"])
def test_a_large_dataset_image_warns_in_one_line(reader, small_limit, tmp_path, caplog):
    from regionharmony.data import images

    path = _write(tmp_path / f"{reader}.png", 20, 8, "L" if reader == "read_mask" else "RGB")
    with warnings.catch_warnings(record=True) as recorded, caplog.at_level(logging.WARNING):
        warnings.simplefilter("always")
        result = getattr(images, reader)(path)
    assert getattr(result, "size", None) == (20, 8) or result.shape[:2] == (8, 20)
    _check_one_warning(caplog, recorded, path, 160)


@pytest.mark.parametrize("loader", ["load_composite", "load_mask"])
def test_a_large_user_image_warns_in_one_line(loader, small_limit, tmp_path, caplog):
    from regionharmony.inference import user_images

    path = _write(tmp_path / f"{loader}.png", 20, 8, "L" if loader == "load_mask" else "RGB")
    with warnings.catch_warnings(record=True) as recorded, caplog.at_level(logging.WARNING):
        warnings.simplefilter("always")
        array = getattr(user_images, loader)(path)
    assert array.shape[:2] == (8, 20)
    _check_one_warning(caplog, recorded, path, 160)


def test_an_image_over_the_error_limit_stays_a_one_line_refusal(small_limit, tmp_path):
    from regionharmony.data.images import read_image
    from regionharmony.inference.user_images import load_composite

    path = _write(tmp_path / "huge.png", 20, 12)
    with pytest.raises(DataError) as data_err:
        read_image(path)
    with pytest.raises(HarmonizeError) as user_err:
        load_composite(path)
    for err in (data_err, user_err):
        message = str(err.value)
        assert message.startswith(str(path)) and "\n" not in message
        assert "240" in message


def test_the_warning_is_one_line_on_the_terminal(tmp_path):
    """Outside pytest's log capture: what a user of the command sees on stderr."""
    path = _write(tmp_path / "big.png", 20, 8)
    code = (
        "from PIL import Image; Image.MAX_IMAGE_PIXELS = 100\n"
        "from regionharmony.inference.user_images import load_composite\n"
        f"load_composite({str(path)!r}); load_composite({str(path)!r})\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr  # once per file, in one line
    assert str(path) in lines[0] and "160 pixels" in lines[0]
