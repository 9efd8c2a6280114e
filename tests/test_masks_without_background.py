"""A mask that covers the whole image is a warning of check-data and evaluate, and
metrics.json says how such an image was scored."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from regionharmony.cli import main


def whiten_first_test_mask(root: Path) -> tuple[list[str], Path]:
    """Make the mask of the first HCOCO test composite cover the whole image; the names of the
    test composites that use it, and the mask."""
    names = (root / "HCOCO" / "HCOCO_test.txt").read_text().split()
    prefix = names[0].rsplit("_", 1)[0]  # <image id>_<mask id>
    mask = root / "HCOCO" / "masks" / f"{prefix}.png"
    size = Image.open(mask).size
    Image.new("RGB", size, (255, 255, 255)).save(mask)
    using = [n.removesuffix(".jpg") for n in names if n.rsplit("_", 1)[0] == prefix]
    return using, mask


def test_check_data_warns_about_a_mask_without_background(root, tmp_path, capsys):
    from regionharmony.data.check import check_root

    _, mask = whiten_first_test_mask(root)
    warnings: list[str] = []
    assert check_root(root, warnings=warnings) == []
    assert len(warnings) == 1 and str(mask) in warnings[0] and "whole image" in warnings[0]

    report = tmp_path / "report.txt"
    argv = ["check-data", "--data-root", str(root), "--report", str(report), "--no-progress"]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert ": OK" in captured.out
    assert captured.err.count("warning: ") == 1 and str(mask) in captured.err
    assert "warning: " in report.read_text() and str(mask) in report.read_text()


def test_evaluate_warns_once_and_records_masks_without_background(
    model_dir, tiny_root, tmp_path, caplog
):
    data = tmp_path / "data"
    shutil.copytree(tiny_root, data)
    names, _ = whiten_first_test_mask(data)
    listed = [f"HCOCO/{n}" for n in names]
    for label, source in (("model", ["--checkpoint", str(model_dir)]), ("composite", None)):
        caplog.clear()
        out = tmp_path / label
        argv = ["evaluate", *(source or ["--baseline", "composite"]), "--data-root", str(data)]
        assert main([*argv, "--out", str(out), "--size", "32", "--no-progress"]) == 0
        warned = [r for r in caplog.records if r.levelname == "WARNING"]
        assert len(warned) == 1 and all(n in warned[0].getMessage() for n in listed)
        metrics = json.loads((out / "metrics.json").read_text())
        note = metrics["no_background"]
        assert note["images"] == listed and note["count"] == len(listed)
        assert "fMSE equals MSE" in note["scoring"]
        assert ("style fusion" in note["scoring"]) == (label == "model")
        rows = list(csv.DictReader((out / "per_image.csv").open()))
        for row in rows:
            whole = row["subset"] == "HCOCO" and row["name"] in names
            assert (float(row["fg_ratio"]) == 1.0) == whole
            assert not whole or float(row["fmse"]) == pytest.approx(float(row["mse"]))
        assert all(np.isfinite(float(r[k])) for r in rows for k in ("mse", "psnr", "fssim"))

    caplog.clear()
    clean = tmp_path / "clean"
    argv = ["evaluate", "--baseline", "composite", "--data-root", str(tiny_root), "--size", "32"]
    assert main([*argv, "--out", str(clean), "--no-progress"]) == 0
    assert "no_background" not in json.loads((clean / "metrics.json").read_text())
    assert not [r for r in caplog.records if r.levelname == "WARNING"]
