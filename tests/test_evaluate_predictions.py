"""`evaluate --predictions DIR`: another method's saved outputs under this repository's
protocol, complete or refused, with the protocol and a content digest in metrics.json."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from regionharmony.cli import main
from regionharmony.data.layout import list_samples

METRIC_COLUMNS = ["subset", "name", "fg_ratio", "composite_fmse", "mse", "psnr", "fmse", "ssim",
                  "fssim"]  # fmt: skip


def evaluate(root: Path, out: Path, *extra: str) -> int:
    args = ["evaluate", "--data-root", str(root), "--out", str(out), "--size", "16"]
    return main([*args, "--workers", "0", "--no-progress", *extra])


def composites_as_predictions(root: Path, folder: Path, layout: str = "iharmony") -> Path:
    """The test composites themselves, saved as a method's outputs would be."""
    for sample in list_samples(root, "test"):
        if layout == "iharmony":
            target = folder / sample.subset / "composite_images" / sample.composite.name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(sample.composite, target)
        else:  # bare names, lossless PNG of the decoded composite
            folder.mkdir(parents=True, exist_ok=True)
            Image.open(sample.composite).convert("RGB").save(folder / f"{sample.name}.png")
    return folder


def test_the_composites_as_predictions_score_as_the_composite_baseline(root, tmp_path) -> None:
    assert evaluate(root, tmp_path / "baseline", "--baseline", "composite") == 0
    baseline = json.loads((tmp_path / "baseline" / "metrics.json").read_text())
    base_rows = pd.read_csv(tmp_path / "baseline" / "per_image.csv")[METRIC_COLUMNS]
    for layout in ("iharmony", "bare"):
        for paste in ("--paste-back", "--no-paste-back"):
            folder = composites_as_predictions(root, tmp_path / f"pred_{layout}", layout)
            out = tmp_path / f"scored_{layout}{paste}"
            assert evaluate(root, out, "--predictions", str(folder), paste) == 0
            scored = json.loads((out / "metrics.json").read_text())
            assert scored["subsets"] == baseline["subsets"], (layout, paste)  # to the last digit
            assert scored["fg_ratio_bins"] == baseline["fg_ratio_bins"]
            rows = pd.read_csv(out / "per_image.csv")
            pd.testing.assert_frame_equal(rows[METRIC_COLUMNS], base_rows)
            protocol = scored["protocol"]
            assert protocol["paste_back"] is (paste == "--paste-back")
            assert protocol["coverage"] == 1.0 and protocol["n"] == protocol["n_listed"]
            assert len(protocol["predictions_sha256"]) == 64
            assert {"size", "resize", "psnr_range", "ssim_mode", "code_version"} <= set(protocol)
            assert (rows["protocol"] == protocol["id"]).all()
            assert rows["prediction"].str.len().min() > 0


def test_a_missing_prediction_is_refused_in_one_line_or_scored_around(root, tmp_path, capsys):
    folder = composites_as_predictions(root, tmp_path / "pred")
    gone = next(folder.rglob("*.jpg"))
    gone.unlink()
    out = tmp_path / "scored"
    assert evaluate(root, out, "--predictions", str(folder)) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "1 missing (first: " in err[0] and gone.stem in err[0]
    assert "--allow-missing" in err[0] and not out.exists()

    assert evaluate(root, out, "--predictions", str(folder), "--allow-missing") == 0
    protocol = json.loads((out / "metrics.json").read_text())["protocol"]
    assert protocol["n"] == protocol["n_listed"] - 1
    assert protocol["coverage"] == pytest.approx((protocol["n_listed"] - 1) / protocol["n_listed"])
    assert "coverage" in capsys.readouterr().out


def test_unreadable_and_wrong_size_predictions_are_refused(root, tmp_path, capsys) -> None:
    folder = composites_as_predictions(root, tmp_path / "pred")
    first, second = sorted(folder.rglob("*.jpg"))[:2]
    first.write_bytes(b"not an image")
    Image.new("RGB", (7, 5)).save(second, format="JPEG")
    out = tmp_path / "scored"
    for extra in ([], ["--allow-missing"]):
        assert evaluate(root, out, "--predictions", str(folder), *extra) == 1
        line = capsys.readouterr().err.strip()
        assert "1 unreadable" in line and "1 of the wrong size" in line and "7x5" in line
        assert not out.exists()


def test_predictions_of_a_missing_folder_or_none_found(root, tmp_path, capsys) -> None:
    assert evaluate(root, tmp_path / "o", "--predictions", str(tmp_path / "nowhere")) == 1
    assert "no such folder" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert evaluate(root, tmp_path / "o", "--predictions", str(tmp_path / "empty"),
                    "--allow-missing") == 1  # fmt: skip
    assert "none of the" in capsys.readouterr().err
