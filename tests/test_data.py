"""iHarmony4 reader, transforms, check-data, require_valid_root, prepare (docs/design.md 3-4)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from regionharmony.cli import main as cli_main
from regionharmony.config import build_config
from regionharmony.data import (
    DataError,
    list_samples,
    load_pair,
    make_sample,
    parse_composite_name,
)
from regionharmony.data import resize_binary_mask as resize_mask
from regionharmony.data.check import check_root, require_valid_root
from regionharmony.data.dataset import HarmonyDataset, eval_transform, train_transform
from regionharmony.data.prepare import prepare_root
from regionharmony.io import atomic_directory


def check_main(argv: list[str]) -> int:
    return cli_main(["check-data", *argv])


def prepare_main(argv: list[str]) -> int:
    return cli_main(["prepare", *argv])


# -- names and lists ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "parts"),
    [
        ("a0001_1_1.jpg", ("a0001", "1", "1")),
        ("d90000-10_1_3.jpg", ("d90000-10", "1", "3")),  # Hday2night: '-' inside the id
        ("COCO_train2014_9_1495487_2.jpg", ("COCO_train2014_9", "1495487", "2")),
    ],
)
def test_composite_names_split_on_the_last_two_underscores(name, parts):
    assert parse_composite_name(name) == parts


@pytest.mark.parametrize("name", ["a0001.jpg", "a0001_1.jpg", "a__1.jpg", "a_1_1", "x/a_1_1.jpg"])
def test_malformed_composite_names_are_refused(name):
    with pytest.raises(DataError, match="not a composite name"):
        parse_composite_name(name)


def test_a_composite_maps_to_its_mask_and_real_image(tmp_path):
    sample = make_sample(tmp_path, "Hday2night", "d90000-10_1_3.jpg")
    assert sample.mask == tmp_path / "Hday2night/masks/d90000-10_1.png"
    assert sample.real == tmp_path / "Hday2night/real_images/d90000-10.jpg"
    assert sample.name == "d90000-10_1_3" and sample.subset == "Hday2night"


def test_reader_reads_the_ihd_list_or_the_subset_lists(root):
    train = list_samples(root, "train")
    assert [s.subset for s in train] == ["HCOCO"] * 3 + ["HAdobe5k"] * 2 + ["HFlickr", "Hday2night"]
    assert {s.name for s in list_samples(root, "test")} == {
        "c2_1_1",
        "a0002_3_1",
        "f9_1_1",
        "f9_1_2",
        "d90001-2_1_1",
    }
    # a subset selection reads the per-subset lists, in the order asked for
    chosen = list_samples(root, "train", ["Hday2night", "HCOCO"])
    assert [s.name for s in chosen] == ["d90000-10_1_3", "c1_1_1", "c1_1_2", "c1_2_1"]
    # several k of one mask share the mask and the real image
    assert chosen[1].mask == chosen[2].mask and chosen[1].real == chosen[3].real
    assert chosen[1].mask != chosen[3].mask
    # both readings agree
    by_subset = {s.name for s in list_samples(root, "train", ["HCOCO", "HAdobe5k"])}
    assert by_subset == {s.name for s in train if s.subset in ("HCOCO", "HAdobe5k")}


def test_reader_refuses_unknown_splits_and_subsets(root):
    with pytest.raises(DataError, match="unknown split"):
        list_samples(root, "val")
    with pytest.raises(DataError, match="unknown subset"):
        list_samples(root, "train", ["HCOCO", "HVIDIT"])


# -- the dataset and its transforms ---------------------------------------------------------


def test_dataset_items_are_float_tensors_in_range(root):
    item = HarmonyDataset(root, "train")[0]
    assert item["composite"].shape == item["real"].shape == (3, 32, 40)
    assert item["mask"].shape == (1, 32, 40)
    for key in ("composite", "real", "mask"):
        assert item[key].dtype == torch.float32
        assert item[key].min() >= 0 and item[key].max() <= 1
    assert set(item["mask"].unique().tolist()) == {0.0, 1.0}
    assert (item["subset"], item["name"], item["index"]) == ("HCOCO", "c1_1_1", 0)


def test_eval_transform_resizes_to_a_square(root):
    dataset = HarmonyDataset(root, "test", eval_size=24)
    item = dataset[0]
    assert item["composite"].shape == (3, 24, 24) and item["mask"].shape == (1, 24, 24)
    assert set(item["mask"].unique().tolist()) == {0.0, 1.0}


def test_train_transform_crops_and_flips_all_three_alike():
    rng = np.random.default_rng(0)
    real = rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)
    mask = real[..., 0] > 127
    composite = real.copy()
    seen_flips = set()
    for seed in range(12):
        c, m, r = train_transform(
            composite,
            mask,
            real,
            12,
            np.random.default_rng(seed),
            crop="resize_then_crop",
            load_size=20,
        )
        assert c.shape == r.shape == (12, 12, 3) and m.shape == (12, 12)
        assert np.array_equal(c, r) and np.array_equal(m, c[..., 0] > 127)
        # the crop is a window of the (flipped) original
        flipped = not any(
            np.array_equal(c, real[t : t + 12, x : x + 12]) for t in range(9) for x in range(9)
        )
        if flipped:
            mirror = real[:, ::-1]
            assert any(
                np.array_equal(c, mirror[t : t + 12, x : x + 12])
                for t in range(9)
                for x in range(9)
            )
        seen_flips.add(flipped)
    assert seen_flips == {True, False}


def test_train_transform_resizes_before_the_crop():
    real = np.zeros((40, 60, 3), np.uint8)
    real[:, :30] = 200
    mask = np.zeros((40, 60), bool)
    mask[:, :30] = True
    c, m, r = train_transform(
        real, mask, real, 16, np.random.default_rng(1), crop="resize_then_crop", load_size=20
    )
    assert c.shape == (16, 16, 3)
    assert np.array_equal(c, r)
    # foreground and bright pixels stay on the same side after resize, crop and flip
    assert np.array_equal(m[:, [0, -1]], c[:, [0, -1], 0] > 100)


def test_paper_profile_crop_moves_and_keeps_the_three_aligned():
    """The paper profile's crop (BargainNet's random-resized crop, then a flip): 50 seeds give
    many distinct crops, and composite, mask and real stay aligned."""
    train = build_config("paper").train
    assert train.crop == "resized" and train.image_size == 256
    blocks = np.random.default_rng(0).integers(0, 2, (12, 16)).astype(bool)
    mask = np.kron(blocks, np.ones((25, 25), bool))  # 300 x 400, blocks of 25 px
    real = np.zeros((300, 400, 3), np.uint8)
    real[..., 0] = np.where(mask, 230, 20)
    real[..., 1] = np.arange(400)[None, :] * 255 // 400  # a horizontal ramp: shows the window
    composite = real.copy()
    composite[..., 2] = np.where(mask, 255, 0)  # differs from real in a mask-aligned way
    outputs = set()
    for seed in range(50):
        rng = np.random.default_rng(seed)
        c, m, r = train_transform(
            composite, mask, real, train.image_size, rng, min_scale=train.crop_scale
        )
        assert c.shape == r.shape == (256, 256, 3) and m.shape == (256, 256) and m.any()
        assert np.array_equal(c[..., :2], r[..., :2])  # same window and flip for both images
        assert np.mean(m == (r[..., 0] > 125)) > 0.97  # the mask follows the image content
        assert np.mean(m == (c[..., 2] > 127)) > 0.97
        outputs.add(r[..., 1].tobytes())
    assert len(outputs) >= 45, f"only {len(outputs)} distinct crops in 50 draws"


def test_training_draws_depend_on_seed_epoch_and_index_only(root):
    a = HarmonyDataset(root, "train", train_size=24, load_size=32)
    b = HarmonyDataset(root, "train", train_size=24, load_size=32)
    a.set_epoch(3, 5)
    b.set_epoch(3, 5)
    assert torch.equal(a[2]["composite"], b[2]["composite"])
    assert a[2]["composite"].shape == (3, 24, 24)
    draws = set()
    for epoch in range(6):
        a.set_epoch(3, epoch)
        draws.add(a[2]["mask"].numpy().tobytes())
    assert len(draws) > 1


def test_dataset_refuses_contradictory_sizes(root):
    with pytest.raises(ValueError, match="not both"):
        HarmonyDataset(root, "train", train_size=16, eval_size=16)
    with pytest.raises(ValueError, match="smaller"):
        HarmonyDataset(root, "train", train_size=16, load_size=8, crop="resize_then_crop")


def test_a_resized_mask_is_never_empty():
    mask = np.zeros((100, 100), bool)
    mask[50, 51] = True
    assert resize_mask(mask, (10, 10)).sum() >= 1
    c, m, r = eval_transform(
        np.zeros((100, 100, 3), np.uint8), mask, np.zeros((100, 100, 3), np.uint8), 10
    )
    assert m.any() and c.shape == (10, 10, 3)


# -- bad inputs -----------------------------------------------------------------------------


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


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
