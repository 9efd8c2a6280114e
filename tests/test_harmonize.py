"""regionharmony.harmonize: the Python API, the command, user-image handling and folder mode."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from regionharmony.config import build_config
from regionharmony.errors import HarmonizeError
from regionharmony.inference.engine import Engine, fold_batchnorm, load_engine
from regionharmony.inference.harmonize import harmonize, main
from regionharmony.inference.strategies import carry_color, fit_color_transform, working_size
from regionharmony.inference.user_images import (
    MASK_THRESHOLD,
    load_composite,
    load_mask,
    save_image,
)
from regionharmony.model.harmonizer import build_model

TRAIN_SIZE = 32


def random_network(seed: int = 0) -> torch.nn.Module:
    """The mini profile with random weights standing in for a trained model: BatchNorm running
    statistics calibrated on random batches (as training would set them) and a small non-zero
    output layer, so that the network changes the foreground by about 10 levels (a fresh model
    is the identity map, which would hide every bug)."""
    torch.manual_seed(seed)
    model = build_model(build_config("mini"))
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.momentum = None  # running statistics = the average over the batches below
    torch.nn.init.normal_(model.to_rgb.weight, std=0.005)
    model.train()
    with torch.no_grad():
        for _ in range(4):
            mask = torch.zeros(4, 1, 64, 64)
            mask[..., 10:40, 20:50] = 1
            model(torch.rand(4, 3, 64, 64), mask)
    return model.eval()


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model directory as train.py writes it: model.pt + config.json."""
    folder = tmp_path_factory.mktemp("model")
    cfg = build_config("mini", {"train": {"image_size": TRAIN_SIZE}})
    torch.save(random_network().state_dict(), folder / "model.pt")
    (folder / "config.json").write_text(json.dumps(cfg.to_dict()))
    return folder


@pytest.fixture(scope="module")
def engine(model_dir: Path) -> Engine:
    return load_engine(model_dir, device="cpu", precision="fp32")


def make_pair(height: int = 53, width: int = 71, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """A textured composite (odd, non-square) with a brightened box foreground."""
    rng = np.random.default_rng(seed)
    composite = rng.integers(0, 200, (height, width, 3), dtype=np.uint8)
    mask = np.zeros((height, width), bool)
    mask[height // 5 : height // 2 + 3, width // 4 : width // 2 + 5] = True
    composite[mask] = np.clip(composite[mask].astype(int) + 50, 0, 255).astype(np.uint8)
    return composite, mask


def write_pair(folder: Path, name: str, height=53, width=71, seed=1) -> tuple[Path, Path]:
    composite, mask = make_pair(height, width, seed)
    folder.mkdir(parents=True, exist_ok=True)
    comp_path, mask_path = folder / f"{name}.jpg", folder / f"{name}_mask.png"
    Image.fromarray(composite).save(comp_path, quality=95)
    Image.fromarray(mask.astype(np.uint8) * 255).save(mask_path)
    return comp_path, mask_path


# -- the network at native and bounded resolution ------------------------------------------------


@pytest.mark.parametrize("strategy", ["color", "residual", "full"])
def test_odd_non_square_image_round_trips_and_keeps_the_background(engine, strategy):
    composite, mask = make_pair(97, 131)  # larger than TRAIN_SIZE: the low-resolution path
    out = np.asarray(harmonize(composite, mask, engine, strategy=strategy))
    assert out.shape == composite.shape and out.dtype == np.uint8
    assert np.array_equal(out[~mask], composite[~mask])  # bit for bit outside the mask
    assert not np.array_equal(out[mask], composite[mask])  # and the network did something


def test_small_image_runs_at_its_own_size(engine):
    composite, mask = make_pair(21, 27)  # below max_side: every strategy is the same
    outs = [np.asarray(harmonize(composite, mask, engine, strategy=s)) for s in ("color", "full")]
    assert outs[0].shape == (21, 27, 3)
    assert np.array_equal(outs[0], outs[1])


def test_working_size_keeps_the_aspect_ratio():
    assert working_size(3000, 4000, 256) == (192, 256)
    assert working_size(100, 50, 256) == (100, 50)
    assert working_size(1, 5000, 64) == (1, 64)


def test_color_fit_recovers_an_affine_map():
    rng = np.random.default_rng(0)
    source = rng.random((500, 3))
    true = np.array([[0.9, 0.1, 0.0], [0.0, 1.1, 0.05], [0.02, 0.0, 0.8], [0.05, -0.02, 0.1]])
    target = source @ true[:3] + true[3]
    assert np.allclose(fit_color_transform(source, target), true, atol=5e-3)


def test_color_strategy_applies_the_low_resolution_map_at_full_resolution():
    composite, mask = make_pair(40, 60)
    comp_low, mask_low = composite[::2, ::2], mask[::2, ::2]
    out_low = np.clip(comp_low / 255.0 * 0.8 + 0.05, 0, 1)  # a known colour change
    foreground = carry_color(composite, mask, comp_low, mask_low, out_low)
    expected = composite[mask] / 255.0 * 0.8 + 0.05
    assert np.abs(foreground - expected).max() < 0.01


def test_batchnorm_folding_keeps_the_output():
    network = random_network(3).double()
    folded = fold_batchnorm(network)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    x = torch.rand(1, 3, 40, 56, dtype=torch.float64)
    m = torch.zeros(1, 1, 40, 56, dtype=torch.float64)
    m[..., 8:24, 10:30] = 1
    with torch.no_grad():
        assert torch.allclose(network(x, m), folded(x, m), atol=1e-9)


def test_bf16_output_is_within_tolerance_of_fp32(model_dir):
    """The bf16 path (autocast) against fp32, on the 8-bit output of the network at the image's
    own size. Stated tolerance: over the foreground, mean |bf16 - fp32| <= 1 level and
    max <= 8 levels, for a network that changes the foreground by ~10 levels on average.
    (The trained mini model on the embedded test split: mean 0.31, max 5 levels; see README.)"""
    composite, mask = make_pair(64, 96, seed=5)
    outputs = {
        p: np.asarray(
            harmonize(
                composite, mask, load_engine(model_dir, device="cpu", precision=p), strategy="full"
            )
        ).astype(int)
        for p in ("fp32", "bf16")
    }
    change = np.abs(outputs["fp32"] - composite)[mask].mean()
    assert change > 3  # the comparison means something
    diff = np.abs(outputs["fp32"] - outputs["bf16"])[mask]
    assert diff.max() <= 8, f"max {diff.max()}, mean {diff.mean():.3f}"
    assert diff.mean() <= 1.0, f"max {diff.max()}, mean {diff.mean():.3f}"


# -- inputs as people have them ----------------------------------------------------------------


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


def test_bad_inputs_give_named_errors(tmp_path, engine):
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
            harmonize(comp, m, engine)
    with pytest.raises(HarmonizeError, match="broken.jpg"):
        harmonize(unreadable, mask, engine)


# -- --invert-mask: the background harmonised to the foreground ------------------------------


@pytest.mark.parametrize("size", [(97, 131), (21, 27)], ids=["low_resolution", "own_size"])
def test_an_inverted_mask_harmonises_the_other_region(engine, size):
    composite, mask = make_pair(*size)
    out = np.asarray(harmonize(composite, mask, engine, invert_mask=True))
    assert np.array_equal(out[mask], composite[mask])  # the original foreground is kept
    assert not np.array_equal(out[~mask], composite[~mask])  # the rest was harmonised
    assert np.array_equal(out, np.asarray(harmonize(composite, ~mask, engine)))


def test_inverting_twice_is_not_inverting(engine, tmp_path):
    composite, mask = make_pair(60, 44, seed=4)
    plain = np.asarray(harmonize(composite, mask, engine))
    assert np.array_equal(np.asarray(harmonize(composite, ~mask, engine, invert_mask=True)), plain)
    # through files, and with a soft (grey-level) mask: the threshold is applied first, then
    # the inversion, so grey 127 counts as background and 128 as foreground
    soft = np.where(mask, 128, 127).astype(np.uint8)
    inverted = np.where(mask, 127, 128).astype(np.uint8)
    Image.fromarray(soft).save(tmp_path / "soft.png")
    Image.fromarray(inverted).save(tmp_path / "inverted.png")
    assert np.array_equal(np.asarray(harmonize(composite, tmp_path / "soft.png", engine)), plain)
    twice = harmonize(composite, tmp_path / "inverted.png", engine, invert_mask=True)
    assert np.array_equal(np.asarray(twice), plain)


def test_the_package_function_takes_invert_mask(engine):
    import regionharmony

    composite, mask = make_pair(30, 40)
    out = np.asarray(regionharmony.harmonize(composite, mask, engine, invert_mask=True))
    assert np.array_equal(out[mask], composite[mask])


def test_an_inverted_mask_without_background_is_refused_saying_so(engine):
    composite, mask = make_pair(30, 40)
    with pytest.raises(HarmonizeError, match="--invert-mask"):
        harmonize(composite, np.zeros_like(mask), engine, invert_mask=True)
    with pytest.raises(HarmonizeError, match="--invert-mask"):
        harmonize(composite, np.ones_like(mask), engine, invert_mask=True)


def test_command_inverts_the_mask_in_single_and_folder_mode(tmp_path, model_dir):
    comp_path, mask_path = write_pair(tmp_path / "in", "a", 61, 45)
    options = ["--device", "cpu", "--precision", "fp32"]
    single = tmp_path / "single.png"
    args = ["--checkpoint", str(model_dir), str(comp_path), str(mask_path), "--out", str(single)]
    assert main([*args, *options, "--invert-mask"]) == 0
    expected = harmonize(
        comp_path, mask_path, model_dir, device="cpu", precision="fp32", invert_mask=True
    )
    assert np.asarray(Image.open(single)).tobytes() == np.asarray(expected).tobytes()
    mask = load_mask(mask_path)
    assert np.array_equal(np.asarray(expected)[mask], load_composite(comp_path)[mask])

    out = tmp_path / "folder"
    folder = ["--checkpoint", str(model_dir), "--input-dir", str(tmp_path / "in")]
    folder += ["--out-dir", str(out), "--no-progress", *options]
    assert main([*folder, "--invert-mask", "true"]) == 0
    assert (out / "a.png").read_bytes() == single.read_bytes()
    assert main([*folder, "--invert-mask", "false"]) == 0
    assert (out / "a.png").read_bytes() != single.read_bytes()


def test_float_arrays_must_be_in_0_1(engine):
    """A float array is read on the 0-1 scale; one in 0-255 (or below 0) is refused, not clipped
    to a near-white image. Overshoot of under half an 8-bit level is rounding: accepted."""
    composite, mask = make_pair(30, 40)
    expected = np.asarray(harmonize(composite, mask, engine))
    as_float = composite.astype(np.float32) / 255
    assert np.array_equal(np.asarray(harmonize(as_float, mask, engine)), expected)
    nudged = as_float.copy()
    nudged[0, 0] = [1.001, -0.001, 0.5]
    harmonize(nudged, mask, engine)
    rule = r"float array with values from .* must be in \[0, 1\] .*uint8.*divide by 255"
    for bad in (composite.astype(np.float32), composite.astype(np.float64) / 127.5 - 1):
        with pytest.raises(HarmonizeError, match=rule):
            harmonize(bad, mask, engine)
    with pytest.raises(HarmonizeError, match=f"^mask: {rule}"):
        harmonize(composite, mask.astype(np.float32) * 255, engine)
    with pytest.raises(HarmonizeError, match="composite: float array with values from 0 to 199"):
        harmonize(np.where(mask[..., None], 0, 199).astype(np.float32).repeat(3, 2), mask, engine)


# -- the command --------------------------------------------------------------------------------


def test_api_and_command_give_identical_bytes(tmp_path, model_dir):
    comp_path, mask_path = write_pair(tmp_path / "in", "a", 61, 45)
    out = tmp_path / "cli.png"
    args = ["--checkpoint", str(model_dir), str(comp_path), str(mask_path), "--out", str(out)]
    assert main([*args, "--device", "cpu", "--precision", "fp32"]) == 0
    image = harmonize(comp_path, mask_path, model_dir, device="cpu", precision="fp32")
    assert np.asarray(image).tobytes() == np.asarray(Image.open(out)).tobytes()
    api = tmp_path / "api.png"
    save_image(image, api)  # the writer the command uses
    assert out.read_bytes() == api.read_bytes()
    assert not list(out.parent.glob(".*tmp"))  # no temporary left behind


def test_command_never_overwrites_an_input(tmp_path, model_dir, capsys):
    comp_path, mask_path = write_pair(tmp_path, "a")
    png = tmp_path / "a.png"
    Image.open(comp_path).save(png)
    before = png.read_bytes()
    args = ["--checkpoint", str(model_dir), str(png), str(mask_path), "--out", str(png)]
    assert main(args) == 1
    assert png.read_bytes() == before
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "overwrite an input" in err and "Traceback" not in err


def test_command_reports_bad_input_in_one_line(tmp_path, model_dir, capsys):
    comp_path, _ = write_pair(tmp_path, "a")
    empty = tmp_path / "empty.png"
    Image.fromarray(np.zeros((53, 71), np.uint8)).save(empty)
    out = tmp_path / "o.png"
    args = ["--checkpoint", str(model_dir), str(comp_path), str(empty), "--out", str(out)]
    assert main(args) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "empty.png" in err and "empty mask" in err
    assert not (tmp_path / "o.png").exists()


def test_folder_mode_skips_a_bad_pair_and_finishes_the_rest(tmp_path, model_dir, capsys):
    src = tmp_path / "in"
    write_pair(src, "good1", 40, 56, seed=1)
    write_pair(src, "good2", 33, 29, seed=2)
    write_pair(src, "badsize", 40, 56, seed=3)
    Image.fromarray(np.zeros((10, 10), np.uint8)).save(src / "badsize_mask.png")
    Image.fromarray(make_pair(20, 20)[0]).save(src / "nomask.jpg")
    (src / "corrupt.jpg").write_bytes(b"\xff\xd8 truncated")
    Image.fromarray(np.full((20, 20), 255, np.uint8)).save(src / "corrupt_mask.png")
    out = tmp_path / "out"
    code = main(
        [
            "--checkpoint",
            str(model_dir),
            "--input-dir",
            str(src),
            "--out-dir",
            str(out),
            "--no-progress",
        ]
    )
    assert code == 1
    assert sorted(p.name for p in out.iterdir()) == ["good1.png", "good2.png"]
    assert Image.open(out / "good2.png").size == (29, 33)
    err = capsys.readouterr().err
    for name in ("badsize", "nomask", "corrupt"):
        assert name in err
    assert "Traceback" not in err


def test_folder_mode_mask_dir_and_list_layouts(tmp_path, model_dir, root):
    # DIH99: image/NAME.png + mask/NAME.png
    composite, mask = make_pair(30, 44)
    (tmp_path / "image").mkdir()
    (tmp_path / "mask").mkdir()
    Image.fromarray(composite).save(tmp_path / "image" / "0019.png")
    Image.fromarray(mask.astype(np.uint8) * 255).save(tmp_path / "mask" / "0019.png")
    out = tmp_path / "dih"
    base = ["--checkpoint", str(model_dir), "--no-progress"]
    assert (
        main(
            [
                *base,
                "--input-dir",
                str(tmp_path / "image"),
                "--mask-dir",
                str(tmp_path / "mask"),
                "--out-dir",
                str(out),
            ]
        )
        == 0
    )
    assert (out / "0019.png").is_file()
    # iHarmony4 list
    out = tmp_path / "ihd"
    assert (
        main(
            [
                *base,
                "--input-dir",
                str(root),
                "--list",
                str(root / "IHD_test.txt"),
                "--out-dir",
                str(out),
            ]
        )
        == 0
    )
    assert len(list(out.glob("*/*.png"))) == len((root / "IHD_test.txt").read_text().split())


def test_folder_mode_realhm_suffixes(tmp_path, model_dir):
    folder = tmp_path / "RealHM" / "vendor_testing_1"
    composite, mask = make_pair(30, 44)
    folder.mkdir(parents=True)
    Image.fromarray(composite).save(folder / "p1_composite.jpg")
    Image.fromarray(composite).save(folder / "p1_gt.jpg")
    Image.fromarray(mask.astype(np.uint8) * 255).save(folder / "p1_mask.jpg")
    out = tmp_path / "out"
    assert (
        main(
            [
                "--checkpoint",
                str(model_dir),
                "--no-progress",
                "--input-dir",
                str(tmp_path / "RealHM"),
                "--recursive",
                "--composite-suffix",
                "_composite",
                "--out-dir",
                str(out),
            ]
        )
        == 0
    )
    assert [p.relative_to(out).as_posix() for p in out.rglob("*.png")] == [
        "vendor_testing_1/p1.png"
    ]


def test_package_import_stays_light():
    code = (
        "import sys, regionharmony; assert 'torch' not in sys.modules; "
        "import regionharmony.inference.harmonize; "  # the submodule must not shadow the function
        "print(regionharmony.harmonize.__module__, regionharmony.harmonize.__name__)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["regionharmony.inference.harmonize", "harmonize"]


def test_precision_auto_follows_native_bf16_support():
    from regionharmony.inference.engine import resolve_precision
    from regionharmony.runtime import cpu_has_native_bf16

    cpu = torch.device("cpu")
    assert resolve_precision("auto", cpu) == ("bf16" if cpu_has_native_bf16() else "fp32")
    assert resolve_precision("fp32", cpu) == "fp32"
    with pytest.raises(ValueError, match="precision"):
        resolve_precision("fp16", cpu)


def test_empty_pairing_options_mean_not_used():
    from regionharmony.inference.harmonize import optional_path

    assert optional_path("") is None and optional_path("a/b") == Path("a/b")


def test_recursive_accepts_a_bare_flag_or_a_boolean():
    import argparse

    from regionharmony.inference.harmonize import add_arguments

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    base = ["--checkpoint", "m", "--input-dir", "i", "--out-dir", "o"]
    assert parser.parse_args(base).recursive is False
    assert parser.parse_args([*base, "--recursive"]).recursive is True
    assert parser.parse_args([*base, "--recursive", "false"]).recursive is False
    assert parser.parse_args([*base, "--recursive", "True"]).recursive is True


def test_unusable_model_is_a_one_line_error(tmp_path, model_dir, capsys):
    comp_path, mask_path = write_pair(tmp_path, "a")
    broken = tmp_path / "broken_model"
    broken.mkdir()
    (broken / "config.json").write_text((model_dir / "config.json").read_text())
    (broken / "model.pt").write_bytes(b"not a checkpoint")
    out = tmp_path / "o.png"
    assert main(["--checkpoint", str(broken), str(comp_path), str(mask_path), "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {broken / 'model.pt'}: not a usable checkpoint")
    assert "\n" not in err
    assert not out.exists()


def test_batchnorm_folding_finds_its_layers_by_type():
    """Folding does not depend on attribute names: a block with names of its own is folded,
    and one whose convolution output is also used beside its BatchNorm is left alone."""

    class Odd(torch.nn.Module):
        def __init__(self, reuse: bool) -> None:
            super().__init__()
            self.alpha, self.beta = torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.BatchNorm2d(4)
            self.reuse = reuse

        def forward(self, x, mask):
            y = self.alpha(x)
            return self.beta(y) + (y if self.reuse else 0)

    for reuse in (False, True):
        net = Odd(reuse).double()
        net.beta.running_mean.uniform_(-1, 1)
        net.beta.running_var.uniform_(0.5, 2)
        probe = (torch.rand(1, 3, 8, 8, dtype=torch.float64), torch.zeros(1, 1, 8, 8))
        if reuse:
            with pytest.raises(RuntimeError, match="changed the network's output"):
                fold_batchnorm(net, probe)
        else:
            folded = fold_batchnorm(net, probe)
            assert isinstance(folded.beta, torch.nn.Identity)
            with torch.no_grad():
                assert torch.allclose(folded(*probe), net.eval()(*probe), atol=1e-9)


def test_a_demonstration_model_says_so_once(model_dir, tmp_path, capsys):
    """A model of the mini profile (its summary.json says so) is named a demonstration model
    once, with where a real one comes from; a model without that mark gets no note."""
    from PIL import Image

    composite, mask = make_pair()
    Image.fromarray(composite).save(tmp_path / "c.png")
    Image.fromarray(mask.astype(np.uint8) * 255).save(tmp_path / "m.png")
    shutil_copy = __import__("shutil").copytree
    marked = tmp_path / "marked"
    shutil_copy(model_dir, marked)
    (marked / "summary.json").write_text(json.dumps({"profile": "mini"}))
    for folder, expected in ((model_dir, 0), (marked, 1)):
        out = tmp_path / f"out_{expected}.png"
        argv = ["--checkpoint", str(folder), "--device", "cpu"]
        assert (
            main([*argv, str(tmp_path / "c.png"), str(tmp_path / "m.png"), "--out", str(out)]) == 0
        )
        assert capsys.readouterr().err.count("demonstration model") == expected
