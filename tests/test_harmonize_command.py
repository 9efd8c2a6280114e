"""`regionharmony harmonize`, the command: single-pair and folder mode, its one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from harmonize_helpers import (
    make_pair,
    single_image_args,
    write_pair,
)
from PIL import Image

from regionharmony.inference.harmonize import harmonize, main
from regionharmony.inference.user_images import (
    load_composite,
    load_mask,
    save_image,
)


def test_command_inverts_the_mask_in_single_and_folder_mode(tmp_path, random_model_dir):
    comp_path, mask_path = write_pair(tmp_path / "in", "a", 61, 45)
    options = ["--device", "cpu", "--precision", "fp32"]
    single = tmp_path / "single.png"
    args = single_image_args(random_model_dir, comp_path, mask_path, single)
    assert main([*args, *options, "--invert-mask"]) == 0
    expected = harmonize(
        comp_path, mask_path, random_model_dir, device="cpu", precision="fp32", invert_mask=True
    )
    assert np.asarray(Image.open(single)).tobytes() == np.asarray(expected).tobytes()
    mask = load_mask(mask_path)
    assert np.array_equal(np.asarray(expected)[mask], load_composite(comp_path)[mask])

    out = tmp_path / "folder"
    folder = ["--checkpoint", str(random_model_dir), "--input-dir", str(tmp_path / "in")]
    folder += ["--out-dir", str(out), "--no-progress", *options]
    assert main([*folder, "--invert-mask", "true"]) == 0
    assert (out / "a.png").read_bytes() == single.read_bytes()
    assert main([*folder, "--invert-mask", "false"]) == 0
    assert (out / "a.png").read_bytes() != single.read_bytes()


def test_api_and_command_give_identical_bytes(tmp_path, random_model_dir):
    comp_path, mask_path = write_pair(tmp_path / "in", "a", 61, 45)
    out = tmp_path / "cli.png"
    args = single_image_args(random_model_dir, comp_path, mask_path, out)
    assert main([*args, "--device", "cpu", "--precision", "fp32"]) == 0
    image = harmonize(comp_path, mask_path, random_model_dir, device="cpu", precision="fp32")
    assert np.asarray(image).tobytes() == np.asarray(Image.open(out)).tobytes()
    api = tmp_path / "api.png"
    save_image(image, api)  # the writer the command uses
    assert out.read_bytes() == api.read_bytes()
    assert not list(out.parent.glob(".*tmp"))  # no temporary left behind


def test_command_never_overwrites_an_input(tmp_path, random_model_dir, capsys):
    comp_path, mask_path = write_pair(tmp_path, "a")
    png = tmp_path / "a.png"
    Image.open(comp_path).save(png)
    before = png.read_bytes()
    args = single_image_args(random_model_dir, png, mask_path, png)
    assert main(args) == 1
    assert png.read_bytes() == before
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "overwrite an input" in err and "Traceback" not in err


def test_command_reports_bad_input_in_one_line(tmp_path, random_model_dir, capsys):
    comp_path, _ = write_pair(tmp_path, "a")
    empty = tmp_path / "empty.png"
    Image.fromarray(np.zeros((53, 71), np.uint8)).save(empty)
    out = tmp_path / "o.png"
    args = single_image_args(random_model_dir, comp_path, empty, out)
    assert main(args) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "empty.png" in err and "empty mask" in err
    assert not (tmp_path / "o.png").exists()


def test_unusable_model_is_a_one_line_error(tmp_path, random_model_dir, capsys):
    comp_path, mask_path = write_pair(tmp_path, "a")
    broken = tmp_path / "broken_model"
    broken.mkdir()
    (broken / "config.json").write_text((random_model_dir / "config.json").read_text())
    (broken / "model.pt").write_bytes(b"not a checkpoint")
    out = tmp_path / "o.png"
    assert main(["--checkpoint", str(broken), str(comp_path), str(mask_path), "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {broken / 'model.pt'}: not a usable checkpoint")
    assert "\n" not in err
    assert not out.exists()


def test_a_demonstration_model_says_so_once(random_model_dir, tmp_path, capsys):
    """A model of the mini profile (its summary.json says so) is named a demonstration model
    once, with where a real one comes from; a model without that mark gets no note."""
    from PIL import Image

    composite, mask = make_pair()
    Image.fromarray(composite).save(tmp_path / "c.png")
    Image.fromarray(mask.astype(np.uint8) * 255).save(tmp_path / "m.png")
    shutil_copy = __import__("shutil").copytree
    marked = tmp_path / "marked"
    shutil_copy(random_model_dir, marked)
    (marked / "summary.json").write_text(json.dumps({"profile": "mini"}))
    for folder, expected in ((random_model_dir, 0), (marked, 1)):
        out = tmp_path / f"out_{expected}.png"
        argv = ["--checkpoint", str(folder), "--device", "cpu"]
        assert (
            main([*argv, str(tmp_path / "c.png"), str(tmp_path / "m.png"), "--out", str(out)]) == 0
        )
        assert capsys.readouterr().err.count("demonstration model") == expected


def test_folder_mode_skips_a_bad_pair_and_finishes_the_rest(tmp_path, random_model_dir, capsys):
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
            str(random_model_dir),
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


def test_folder_mode_mask_dir_and_list_layouts(tmp_path, random_model_dir, root):
    # DIH99: image/NAME.png + mask/NAME.png
    composite, mask = make_pair(30, 44)
    (tmp_path / "image").mkdir()
    (tmp_path / "mask").mkdir()
    Image.fromarray(composite).save(tmp_path / "image" / "0019.png")
    Image.fromarray(mask.astype(np.uint8) * 255).save(tmp_path / "mask" / "0019.png")
    out = tmp_path / "dih"
    base = ["--checkpoint", str(random_model_dir), "--no-progress"]
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


def test_folder_mode_realhm_suffixes(tmp_path, random_model_dir):
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
                str(random_model_dir),
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


def test_the_command_loads_none_of_the_pipelines_heavy_modules(tmp_path, random_model_dir):
    """dvc, pandas, scikit-learn, matplotlib and SciPy cost seconds to import and harmonize
    needs none of them (measured with python -X importtime)."""
    comp_path, mask_path = write_pair(tmp_path, "a")
    heavy = ("dvc", "pandas", "sklearn", "matplotlib", "scipy")
    code = (
        "import sys; from regionharmony.cli import main; code = main(sys.argv[1:]); "
        f"print(sorted({{m.split('.')[0] for m in sys.modules}} & {set(heavy)!r})); "
        "raise SystemExit(code)"
    )
    argv = ["harmonize", "--checkpoint", str(random_model_dir), str(comp_path), str(mask_path)]
    argv += ["--out", str(tmp_path / "o.png"), "--device", "cpu"]
    result = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "[]"
