"""The iHarmony4 reader: composite names, the lists, and the dataset's transforms."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from regionharmony.data import (
    DataError,
    list_samples,
    make_sample,
    parse_composite_name,
)
from regionharmony.data import resize_binary_mask as resize_mask
from regionharmony.data.dataset import HarmonyDataset, eval_transform, train_transform
from regionharmony.params import build_config

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
