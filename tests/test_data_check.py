"""check-data and require_valid_root: every bad input reported naming its file, all at once,
the same with workers."""

from __future__ import annotations

import shutil
from pathlib import Path

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
from regionharmony.data.check import check_root, require_valid_root
from regionharmony.data.dataset import HarmonyDataset


def check_main(argv: list[str]) -> int:
    return cli_main(["check-data", *argv])


# -- bad inputs -----------------------------------------------------------------------------


def save_mask(path: Path, array: np.ndarray) -> None:
    Image.fromarray(np.stack([array] * 3, -1)).save(path)


def _drop_line(path: Path, name: str) -> None:
    lines = [x for x in path.read_text().splitlines() if name not in x]
    path.write_text("".join(f"{x}\n" for x in lines))


# (breaker, the file the problem must name, words of the message)
BREAKERS = {
    "missing list file": (
        lambda r: (r / "HFlickr/HFlickr_test.txt").unlink(),
        "HFlickr/HFlickr_test.txt",
        "list file missing",
    ),
    "missing IHD list": (lambda r: (r / "IHD_train.txt").unlink(), "IHD_train.txt", "missing"),
    "entry without file": (
        lambda r: (r / "HCOCO/composite_images/c1_1_2.jpg").unlink(),
        "HCOCO/composite_images/c1_1_2.jpg",
        "has no file",
    ),
    "missing mask": (
        lambda r: (r / "HAdobe5k/masks/a0001_1.png").unlink(),
        "HAdobe5k/masks/a0001_1.png",
        "mask",
    ),
    "missing real": (
        lambda r: (r / "Hday2night/real_images/d90000-10.jpg").unlink(),
        "Hday2night/real_images/d90000-10.jpg",
        "real image",
    ),
    "unreadable image": (
        lambda r: (r / "HFlickr/composite_images/f9_1_2.jpg").write_bytes(b"not an image"),
        "HFlickr/composite_images/f9_1_2.jpg",
        "unreadable",
    ),
    "truncated image": (
        lambda r: truncate(r / "HCOCO/real_images/c2.jpg"),
        "HCOCO/real_images/c2.jpg",
        "truncated",
    ),
    "truncated mask": (
        lambda r: truncate(r / "HCOCO/masks/c2_1.png"),
        "HCOCO/masks/c2_1.png",
        "truncated",
    ),
    "mask size mismatch": (
        lambda r: save_mask(r / "HAdobe5k/masks/a0002_3.png", np.full((10, 10), 255, np.uint8)),
        "HAdobe5k/masks/a0002_3.png",
        "differs from composite",
    ),
    "real size mismatch": (
        lambda r: Image.new("RGB", (41, 32)).save(r / "HFlickr/real_images/f9.jpg"),
        "HFlickr/real_images/f9.jpg",
        "differs from composite",
    ),
    "empty mask": (
        lambda r: save_mask(r / "Hday2night/masks/d90001-2_1.png", np.zeros((32, 40), np.uint8)),
        "Hday2night/masks/d90001-2_1.png",
        "empty mask",
    ),
    "lists disagree": (
        lambda r: _drop_line(r / "IHD_test.txt", "f9_1_2.jpg"),
        "HFlickr/HFlickr_test.txt",
        "is not in",
    ),
    "malformed name": (
        lambda r: (r / "HCOCO/HCOCO_test.txt").write_text("c2.jpg\n"),
        "HCOCO/HCOCO_test.txt",
        "not a composite name",
    ),
    "IHD references a missing subset": (
        lambda r: shutil.rmtree(r / "HFlickr"),
        "IHD_train.txt",
        "subset folder",
    ),
}


def test_a_good_root_has_no_problems(root):
    assert check_root(root) == []
    assert check_root(root, splits=["test"], subsets=["HCOCO"]) == []
    require_valid_root(root)
    require_valid_root(root, split="train", subsets=["HFlickr"])


@pytest.mark.parametrize("kind", sorted(BREAKERS))
def test_every_bad_input_is_reported_naming_the_file(root, kind):
    breaker, culprit, words = BREAKERS[kind]
    breaker(root)
    problems = check_root(root)
    hits = [p for p in problems if str(root / culprit) in p and words in p]
    assert hits, problems


@pytest.mark.parametrize(
    "kind",
    [
        "truncated image",
        "unreadable image",
        "mask size mismatch",
        "real size mismatch",
        "empty mask",
    ],
)
def test_the_reader_raises_a_data_error_naming_the_file(root, kind):
    breaker, culprit, words = BREAKERS[kind]
    breaker(root)
    samples = list_samples(root, "test") + list_samples(root, "train")
    errors = []
    for sample in samples:
        try:
            load_pair(sample)
        except DataError as err:
            errors.append(str(err))
    assert any(str(root / culprit) in e and words in e for e in errors), errors


def test_check_lists_every_problem_at_once(root):
    for kind in ("missing mask", "truncated image", "empty mask", "real size mismatch"):
        BREAKERS[kind][0](root)
    problems = check_root(root)
    for kind in ("missing mask", "truncated image", "empty mask", "real size mismatch"):
        assert any(str(root / BREAKERS[kind][1]) in p for p in problems), kind


def test_headers_only_check_misses_truncation_but_the_reader_catches_it(root):
    truncate(root / "HCOCO/real_images/c2.jpg")
    require_valid_root(root, split="test")  # header-only: passes
    with pytest.raises(DataError, match="c2.jpg"):
        require_valid_root(root, split="test", decode=True)
    with pytest.raises(DataError, match="real_images/c2.jpg"):
        HarmonyDataset(root, "test", ["HCOCO"])[0]


def test_a_root_may_hold_a_subset_selection(root):
    shutil.rmtree(root / "HFlickr")
    assert any("HFlickr" in p for p in check_root(root))  # the IHD lists still name it
    assert check_root(root, subsets=["HCOCO", "Hday2night"]) == []
    with pytest.raises(DataError, match="subset folder missing"):
        require_valid_root(root, subsets=["HFlickr"])


def test_official_counts_are_checked_on_request(root):
    assert check_root(root) == []
    problems = check_root(root, expect_official_counts=True)
    assert any("65742" in p and "IHD_train.txt" in p for p in problems)
    assert any("4283" in p and "HCOCO_test.txt" in p for p in problems)
    assert len(problems) == 2 + 8  # two IHD totals, four subsets x two splits


def test_require_valid_root_names_the_first_problems(root):
    composites = sorted(root.glob("*/composite_images/*.jpg"))
    for path in composites:
        path.unlink()
    with pytest.raises(DataError) as info:
        require_valid_root(root)
    message = str(info.value)
    assert f"({len(composites)} problem(s))" in message
    assert message.count("has no file") == 10 and f"and {len(composites) - 10} more" in message
    assert "check-data" in message


def test_check_data_cli_exit_codes_and_report(root, tmp_path, capsys):
    report = tmp_path / "report.txt"
    assert check_main(["--data-root", str(root), "--report", str(report), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "OK" in out and "HCOCO" in out and report.read_text() == out
    assert check_main(["--data-root", str(root), "--profile", "paper", "--no-progress"]) == 1
    assert "65742" in capsys.readouterr().err
    truncate(root / "HCOCO/masks/c1_1.png")
    assert check_main(["--data-root", str(root), "--no-progress"]) == 1
    assert str(root / "HCOCO/masks/c1_1.png") in capsys.readouterr().err


# breakers of different files, each problem still reported beside the others
FILE_BREAKERS = [
    "entry without file",
    "missing mask",
    "missing real",
    "unreadable image",
    "truncated image",
    "truncated mask",
    "mask size mismatch",
    "real size mismatch",
    "empty mask",
    "lists disagree",
]


def break_everything(root: Path) -> Path:
    """Every breaker of `FILE_BREAKERS` and a mask without background (a warning); returns that
    mask."""
    for kind in FILE_BREAKERS:
        BREAKERS[kind][0](root)
    whole = root / "HCOCO/masks/c1_2.png"
    save_mask(whole, np.full((32, 40), 255, np.uint8))
    return whole


def test_check_data_workers_give_the_serial_report(root, tmp_path, capsys, monkeypatch):
    import regionharmony.data.check as check

    whole = break_everything(root)
    pooled = []
    inspect_all = check._inspect_all

    def spy(files, decode, workers, progress):
        pooled.append(workers)
        return inspect_all(files, decode, workers, progress)

    monkeypatch.setattr(check, "_inspect_all", spy)
    serial_warnings: list[str] = []
    serial = check_root(root, warnings=serial_warnings, workers=1)
    assert not pooled
    for kind in FILE_BREAKERS:
        assert any(str(root / BREAKERS[kind][1]) in p for p in serial), kind
    assert any(str(whole) in w for w in serial_warnings)
    for workers in (2, 3, "auto"):
        warnings: list[str] = []
        assert check_root(root, warnings=warnings, workers=workers) == serial
        assert warnings == serial_warnings
    assert pooled[:2] == [2, 3]
    headers = check_root(root, decode=False, workers=1)
    assert check_root(root, decode=False, workers=2) == headers != serial

    reports = {}
    for workers in ("1", "2"):
        report = tmp_path / f"report{workers}.txt"
        argv = ["--data-root", str(root), "--report", str(report), "--no-progress"]
        assert check_main([*argv, "--workers", workers]) == 1
        reports[workers] = (report.read_bytes(), capsys.readouterr().err)
    assert reports["1"] == reports["2"]
    assert b"warning: " in reports["1"][0] and b"truncated" in reports["1"][0]


def test_check_data_workers_option(root, capsys):
    argv = ["--data-root", str(root), "--no-progress"]
    assert check_main([*argv, "--workers", "0"]) == 0  # 0 and 1: this process
    assert "OK" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        check_main([*argv, "--workers", "many"])
    assert "'auto'" in capsys.readouterr().err
