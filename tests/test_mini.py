"""The embedded default dataset (`make-mini`)."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image
from scipy import ndimage

from regionharmony.cli import main as cli_main
from regionharmony.data import SUBSETS, list_samples, load_pair
from regionharmony.data.check import check_root, count_pairs
from regionharmony.data.mini import FMSE_MIN, MILD_FMSE, build_mini
from regionharmony.data.perturbations import away_from_background, light_coordinate


def main(argv: list[str]) -> int:
    return cli_main(["make-mini", *argv])


def tree(root):
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def test_same_seed_gives_byte_identical_files(tmp_path):
    args = ["--size", "40", "--train-per-subset", "3", "--test-per-subset", "2", "--no-progress"]
    assert main(["--out", str(tmp_path / "a"), *args]) == 0
    assert main(["--out", str(tmp_path / "b"), *args]) == 0
    assert main(["--out", str(tmp_path / "c"), "--seed", "1", *args]) == 0
    a, b, c = tree(tmp_path / "a"), tree(tmp_path / "b"), tree(tmp_path / "c")
    assert a == b
    assert a != c


def test_layout_is_iharmony4_and_passes_check(mini_root):
    assert check_root(mini_root) == []
    assert count_pairs(mini_root) == {
        "train": dict.fromkeys(SUBSETS, 6),
        "test": dict.fromkeys(SUBSETS, 4),
    }
    for subset in SUBSETS:
        for folder in ("composite_images", "masks", "real_images"):
            assert (mini_root / subset / folder).is_dir()
    names = [s.name for s in list_samples(mini_root, "train") + list_samples(mini_root, "test")]
    day2night = [n for n in names if n.startswith("d")]
    assert day2night and all("-" in n.rpartition("_")[0].rpartition("_")[0] for n in day2night)
    masks = {n.rpartition("_")[0] for n in names}
    assert len(masks) < len(names)  # several composites per mask
    some_mask = next(iter((mini_root / "HCOCO" / "masks").iterdir()))
    image = Image.open(some_mask)
    assert image.mode == "RGB" and set(np.unique(np.asarray(image))) == {0, 255}


def test_composites_recolour_only_the_foreground(mini_root):
    for split in ("train", "test"):
        for sample in list_samples(mini_root, split):
            composite, mask, real = load_pair(sample)
            diff = (composite.astype(float) - real) ** 2
            assert diff[mask].mean() > FMSE_MIN / 3, sample.name  # visible, after JPEG
            # away from the mask (JPEG blocks touching it aside) the pixels agree
            far = ~ndimage.binary_dilation(mask, iterations=16)
            if far.any():
                assert np.abs(composite[far].astype(int) - real[far]).max() <= 2, sample.name
            assert 0.02 < mask.mean() < 0.45


def test_train_and_test_use_disjoint_photographs(mini_root):
    manifest = json.loads((mini_root / "make_mini.json").read_text())
    assert not set(manifest["photos"]["train"]) & set(manifest["photos"]["test"])
    sources = {"train": set(), "test": set()}
    for split in sources:
        for sample in list_samples(mini_root, split):
            real = f"{sample.subset}/{sample.real.name}"
            sources[split].add(manifest["images"][real]["photo"])
            assert manifest["images"][real]["photo"] in manifest["photos"][split]
    assert not sources["train"] & sources["test"]


def test_refuses_to_overwrite_without_force(tmp_path, capsys):
    out = tmp_path / "mini"
    out.mkdir()
    (out / "keep").write_text("x")
    args = ["--out", str(out), "--size", "32", "--train-per-subset", "1", "--test-per-subset", "1"]
    assert main([*args, "--no-progress"]) == 1
    assert "--force" in capsys.readouterr().err and (out / "keep").exists()
    assert main([*args, "--no-progress", "--force"]) == 0
    assert not (out / "keep").exists() and check_root(out) == []


def test_foregrounds_move_away_from_the_background_light(mini_root):
    """Each composite's side of the light axis (Lab (L* + b*) / sqrt 2) is the one away from
    its background; the light-only families move the foreground that way (the retouch also
    changes saturation, which can move b* the other way); both sides occur."""
    manifest = json.loads((mini_root / "make_mini.json").read_text())
    sides = set()
    for split in ("train", "test"):
        for sample in list_samples(mini_root, split):
            composite, mask, real = load_pair(sample)
            meta = manifest["images"][f"{sample.subset}/{sample.composite.name}"]
            assert meta["side"] == away_from_background(real, mask), sample.name
            if meta["family"] != "retouch":
                moved = light_coordinate(composite[mask]) - light_coordinate(real[mask])
                assert moved * meta["side"] > 0, sample.name
            sides.add(meta["side"])
    assert sides == {-1, 1}


def test_test_split_has_one_composite_per_mask(mini_root):
    names = [s.name for s in list_samples(mini_root, "test")]
    assert len({n.rpartition("_")[0] for n in names}) == len(names)


def test_mild_share_makes_nearly_right_composites(tmp_path, mini_root):
    """--mild-share 1: every composite is the same kind of change scaled down to a foreground
    MSE in MILD_FMSE (before JPEG); the default (0) records nothing and draws nothing."""
    out = tmp_path / "mild"
    build_mini(out, seed=0, size=64, train_per_subset=3, test_per_subset=2, mild_share=1.0)
    manifest = json.loads((out / "make_mini.json").read_text())
    assert manifest["mild_share"] == 1.0
    composites = [m for k, m in manifest["images"].items() if "family" in m]
    assert len(composites) == 4 * 5
    for meta in composites:
        assert 0 < meta["mild_scale"] < 1
        assert MILD_FMSE[0] * 0.5 <= meta["fmse"] <= MILD_FMSE[1] * 1.5, meta
    default = json.loads((mini_root / "make_mini.json").read_text())
    assert "mild_share" not in default
    assert not any("mild_scale" in m for m in default["images"].values())
    assert main(["--out", str(tmp_path / "bad"), "--mild-share", "1.5", "--no-progress"]) == 1
