"""prepare: the same layout at a smaller size, a subset selection, and output that appears
whole or not at all."""

from __future__ import annotations

import numpy as np
import pytest
from cli_helpers import truncate
from PIL import Image

from regionharmony.cli import main as cli_main
from regionharmony.data import (
    DataError,
    list_samples,
    load_pair,
)
from regionharmony.data.check import check_root
from regionharmony.data.dataset import HarmonyDataset
from regionharmony.data.prepare import prepare_root
from regionharmony.io import atomic_directory


def prepare_main(argv: list[str]) -> int:
    return cli_main(["prepare", *argv])


# -- prepare and atomic output --------------------------------------------------------------


def test_prepare_longest_side_writes_the_same_layout(make_root, tmp_path):
    big = make_root("big", size=(80, 40))
    out = tmp_path / "prepared"
    stats = prepare_root(big, out, longest_side=40, progress=False)
    assert check_root(out) == []
    for sample in list_samples(out, "train") + list_samples(out, "test"):
        composite, mask, real = load_pair(sample)
        assert composite.shape == real.shape == (20, 40, 3)
        assert mask.shape == (20, 40)
        assert set(np.unique(np.asarray(Image.open(sample.mask)))) <= {0, 255}
    assert (out / "IHD_train.txt").read_text() == (big / "IHD_train.txt").read_text()
    assert stats["resized"] > 0 and stats["copied"] == 0 and stats["lists"] == 10
    # images already small enough are copied byte for byte
    again = prepare_root(out, tmp_path / "again", longest_side=40, progress=False)
    assert again["resized"] == 0
    name = "HCOCO/composite_images/c1_1_1.jpg"
    assert (tmp_path / "again" / name).read_bytes() == (out / name).read_bytes()


def test_prepare_square_and_subset_selection(root, tmp_path):
    out = tmp_path / "square"
    assert (
        prepare_main(
            [
                "--data-root",
                str(root),
                "--out",
                str(out),
                "--square",
                "16",
                "--subsets",
                "HCOCO",
                "Hday2night",
                "--workers",
                "2",
                "--no-progress",
            ]
        )
        == 0
    )
    assert sorted(p.name for p in out.iterdir()) == [
        "HCOCO",
        "Hday2night",
        "IHD_test.txt",
        "IHD_train.txt",
    ]
    assert check_root(out) == []  # the IHD lists keep only the chosen subsets
    item = HarmonyDataset(out, "train")[0]
    assert item["composite"].shape == (3, 16, 16)


def test_prepare_writes_nothing_when_it_fails(root, tmp_path):
    truncate(root / "HFlickr/real_images/f9.jpg")
    out = tmp_path / "prepared"
    with pytest.raises(DataError, match="f9.jpg"):
        prepare_root(root, out, square=16, progress=False)
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["root"]  # no temporary leftovers


def test_prepare_refuses_to_overwrite_without_force(root, tmp_path, capsys):
    out = tmp_path / "prepared"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    args = ["--data-root", str(root), "--out", str(out), "--square", "16", "--no-progress"]
    assert prepare_main(args) == 1
    assert "--force" in capsys.readouterr().err and (out / "keep.txt").exists()
    assert prepare_main([*args, "--force"]) == 0
    assert not (out / "keep.txt").exists() and check_root(out) == []


def test_atomic_directory_replaces_only_on_success(tmp_path):
    dest = tmp_path / "out"
    with atomic_directory(dest) as tmp:
        (tmp / "a").write_text("1")
    assert (dest / "a").read_text() == "1"
    with pytest.raises(RuntimeError), atomic_directory(dest, replace=True) as tmp:
        (tmp / "a").write_text("2")
        raise RuntimeError("halfway")
    assert (dest / "a").read_text() == "1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    with pytest.raises(FileExistsError), atomic_directory(dest):
        pass
