"""regionharmony.harmonize: inputs as people have them (files, modes, arrays, masks, greyscale,
animated files) and --invert-mask."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from harmonize_helpers import (
    make_pair,
    single_image_args,
)
from PIL import Image

from regionharmony.errors import HarmonizeError
from regionharmony.inference.harmonize import harmonize, main
from regionharmony.inference.user_images import (
    MASK_THRESHOLD,
    load_composite,
    load_mask,
)


def test_exif_orientation_is_applied(tmp_path):
    composite, _ = make_pair(30, 50)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise when shown
    path = tmp_path / "rotated.jpg"
    Image.fromarray(composite).save(path, exif=exif, quality=95)
    assert load_composite(path).shape == (50, 30, 3)


@pytest.mark.parametrize("mode", ["RGBA", "L", "P", "CMYK", "I;16"])
def test_image_modes_become_rgb(tmp_path, mode):
    composite, _ = make_pair(20, 30)
    image = Image.fromarray(composite)
    if mode == "I;16":
        gray = np.asarray(image.convert("L")).astype(np.uint16) * 257
        image = Image.fromarray(gray)
        assert image.mode == "I;16"
    else:
        image = image.convert(mode)
    path = tmp_path / ("x.jpg" if mode == "CMYK" else "x.png")
    image.save(path)
    loaded = load_composite(path)
    assert loaded.shape == (20, 30, 3) and loaded.dtype == np.uint8
    if mode in ("L", "I;16"):  # 16-bit scaled down, not clipped to white
        expected = np.asarray(Image.fromarray(composite).convert("L"))
        assert np.abs(loaded[..., 0].astype(int) - expected).max() <= 1


def test_mask_threshold_and_formats(tmp_path):
    values = np.array([[0, MASK_THRESHOLD, MASK_THRESHOLD + 1, 255]], np.uint8)
    assert load_mask(values).tolist() == [[False, False, True, True]]
    rgb = np.repeat(values[..., None], 3, axis=2)
    assert load_mask(rgb).tolist() == [[False, False, True, True]]
    assert load_mask(values.astype(np.uint16) * 257).tolist() == [[False, False, True, True]]
    assert load_mask(np.array([[0.2, 0.7]])).tolist() == [[False, True]]
    # a cut-out: black colour everywhere, the shape in the alpha channel
    rgba = np.zeros((1, 4, 4), np.uint8)
    rgba[..., 3] = values
    Image.fromarray(rgba, "RGBA").save(tmp_path / "cutout.png")
    assert load_mask(tmp_path / "cutout.png").tolist() == [[False, False, True, True]]


def test_bad_inputs_give_named_errors(tmp_path, random_engine):
    composite, mask = make_pair(30, 40)
    unreadable = tmp_path / "broken.jpg"
    unreadable.write_bytes(b"not an image at all")
    cases = {
        "no such file": (tmp_path / "missing.png", mask),
        "unreadable": (unreadable, mask),
        "differs from the composite": (composite, mask[:, :-1]),
        "empty mask": (composite, np.zeros_like(mask)),
        "covers the whole image": (composite, np.ones_like(mask)),
    }
    for message, (comp, m) in cases.items():
        with pytest.raises(HarmonizeError, match=message):
            harmonize(comp, m, random_engine)
    with pytest.raises(HarmonizeError, match="broken.jpg"):
        harmonize(unreadable, mask, random_engine)


def test_float_arrays_must_be_in_0_1(random_engine):
    """A float array is read on the 0-1 scale; one in 0-255 (or below 0) is refused, not clipped
    to a near-white image. Overshoot of under half an 8-bit level is rounding: accepted."""
    composite, mask = make_pair(30, 40)
    expected = np.asarray(harmonize(composite, mask, random_engine))
    as_float = composite.astype(np.float32) / 255
    assert np.array_equal(np.asarray(harmonize(as_float, mask, random_engine)), expected)
    nudged = as_float.copy()
    nudged[0, 0] = [1.001, -0.001, 0.5]
    harmonize(nudged, mask, random_engine)
    rule = r"float array with values from .* must be in \[0, 1\] .*uint8.*divide by 255"
    for bad in (composite.astype(np.float32), composite.astype(np.float64) / 127.5 - 1):
        with pytest.raises(HarmonizeError, match=rule):
            harmonize(bad, mask, random_engine)
    with pytest.raises(HarmonizeError, match=f"^mask: {rule}"):
        harmonize(composite, mask.astype(np.float32) * 255, random_engine)
    with pytest.raises(HarmonizeError, match="composite: float array with values from 0 to 199"):
        harmonize(
            np.where(mask[..., None], 0, 199).astype(np.float32).repeat(3, 2), mask, random_engine
        )


@pytest.mark.parametrize("size", [(97, 131), (21, 27)], ids=["low_resolution", "own_size"])
def test_an_inverted_mask_harmonises_the_other_region(random_engine, size):
    composite, mask = make_pair(*size)
    out = np.asarray(harmonize(composite, mask, random_engine, invert_mask=True))
    assert np.array_equal(out[mask], composite[mask])  # the original foreground is kept
    assert not np.array_equal(out[~mask], composite[~mask])  # the rest was harmonised
    assert np.array_equal(out, np.asarray(harmonize(composite, ~mask, random_engine)))


def test_inverting_twice_is_not_inverting(random_engine, tmp_path):
    composite, mask = make_pair(60, 44, seed=4)
    plain = np.asarray(harmonize(composite, mask, random_engine))
    assert np.array_equal(
        np.asarray(harmonize(composite, ~mask, random_engine, invert_mask=True)), plain
    )
    # through files, and with a soft (grey-level) mask: the threshold is applied first, then
    # the inversion, so grey 127 counts as background and 128 as foreground
    soft = np.where(mask, 128, 127).astype(np.uint8)
    inverted = np.where(mask, 127, 128).astype(np.uint8)
    Image.fromarray(soft).save(tmp_path / "soft.png")
    Image.fromarray(inverted).save(tmp_path / "inverted.png")
    assert np.array_equal(
        np.asarray(harmonize(composite, tmp_path / "soft.png", random_engine)), plain
    )
    twice = harmonize(composite, tmp_path / "inverted.png", random_engine, invert_mask=True)
    assert np.array_equal(np.asarray(twice), plain)


def test_the_package_function_takes_invert_mask(random_engine):
    import regionharmony

    composite, mask = make_pair(30, 40)
    out = np.asarray(regionharmony.harmonize(composite, mask, random_engine, invert_mask=True))
    assert np.array_equal(out[mask], composite[mask])


def test_an_inverted_mask_without_background_is_refused_saying_so(random_engine):
    composite, mask = make_pair(30, 40)
    with pytest.raises(HarmonizeError, match="--invert-mask"):
        harmonize(composite, np.zeros_like(mask), random_engine, invert_mask=True)
    with pytest.raises(HarmonizeError, match="--invert-mask"):
        harmonize(composite, np.ones_like(mask), random_engine, invert_mask=True)


# -- greyscale composites and files of several frames ------------------------------------------


def channel_spread(image: np.ndarray) -> int:
    """The largest difference between the channels of one pixel (0 for a greyscale image)."""
    image = image.astype(int)
    return int((image.max(axis=2) - image.min(axis=2)).max())


def grey_file(tmp_path: Path, kind: str) -> tuple[Path, np.ndarray]:
    """A greyscale composite of `kind` written to a file, and its 8-bit grey levels."""
    composite, _ = make_pair(53, 71, seed=6)
    grey = np.asarray(Image.fromarray(composite).convert("L"))
    path = tmp_path / f"grey_{kind.replace(';', '')}.{'jpg' if kind == 'JPEG' else 'png'}"
    if kind == "I;16":
        Image.fromarray(grey.astype(np.uint16) * 257).save(path)
    elif kind == "LA":
        Image.fromarray(np.stack([grey, np.full_like(grey, 255)], -1), "LA").save(path)
    elif kind == "RGB":  # three equal channels
        Image.fromarray(np.repeat(grey[..., None], 3, axis=2)).save(path)
    else:  # "L" and "JPEG": a single-channel file
        Image.fromarray(grey).save(path, **({"quality": 95} if kind == "JPEG" else {}))
    # JPEG is lossy: its decoded levels; the others hold `grey` exactly (16-bit: times 257)
    return path, np.asarray(Image.open(path)) if kind == "JPEG" else grey


@pytest.mark.parametrize("kind", ["L", "LA", "I;16", "JPEG", "RGB"])
@pytest.mark.parametrize("strategy", ["color", "full"])
def test_a_greyscale_composite_gives_a_greyscale_result(tmp_path, random_engine, kind, strategy):
    path, grey = grey_file(tmp_path, kind)
    _, mask = make_pair(53, 71, seed=6)
    out = np.asarray(harmonize(path, mask, random_engine, strategy=strategy))
    assert out.shape == (53, 71, 3) and channel_spread(out) == 0
    assert np.array_equal(out[~mask][:, 0], grey[~mask])  # the background, bit for bit
    assert np.abs(out[mask][:, 0].astype(int) - grey[mask]).mean() > 1  # and it was harmonised


def test_a_colour_composite_stays_in_colour(random_engine):
    composite, mask = make_pair(53, 71, seed=6)
    composite[..., 0] = composite[..., 1]  # two equal channels are not greyscale
    out = np.asarray(harmonize(composite, mask, random_engine))
    assert channel_spread(out[mask][None]) > 0


def test_the_command_writes_a_greyscale_result_for_a_greyscale_file(tmp_path, random_model_dir):
    path, grey = grey_file(tmp_path, "L")
    _, mask = make_pair(53, 71, seed=6)
    Image.fromarray(mask.astype(np.uint8) * 255).save(tmp_path / "m.png")
    out = tmp_path / "out.png"
    argv = single_image_args(random_model_dir, path, tmp_path / "m.png", out)
    assert main([*argv, "--device", "cpu"]) == 0
    assert channel_spread(np.asarray(Image.open(out).convert("RGB"))) == 0


def write_gif(path: Path, frames: int) -> Path:
    composite, _ = make_pair(30, 40)
    images = [Image.fromarray(np.roll(composite, 5 * i, axis=1)) for i in range(frames)]
    images[0].save(path, save_all=True, append_images=images[1:], duration=100)
    return path


def test_an_animated_gif_says_in_one_line_that_its_first_frame_is_used(tmp_path):
    """Through a child process: what the user sees on stderr (no logging set up)."""
    animated, still = write_gif(tmp_path / "anim.gif", 3), write_gif(tmp_path / "still.gif", 1)
    code = (
        "import sys; from regionharmony.inference.user_images import load_composite; "
        "print(load_composite(sys.argv[1]).shape)"
    )
    for path, warned in ((animated, True), (still, False)):
        result = subprocess.run(
            [sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True
        )
        assert result.stdout.strip() == "(30, 40, 3)"
        if warned:
            assert result.stderr.count("\n") == 1, result.stderr
            assert result.stderr.startswith(f"{path}: animated GIF with 3 frames: only the first")
        else:
            assert result.stderr == ""
    first = np.asarray(Image.open(animated).convert("RGB"))
    assert np.array_equal(load_composite(animated), first)
