"""Fig. 10 feature maps: one forward pass, background only, a compact atomic npz."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from regionharmony.cli import main as cli_main
from regionharmony.model.harmonizer import build_model
from regionharmony.params import build_config


def main(argv: list[str]) -> int:
    return cli_main(["features", *argv])


SUBSETS = ("HCOCO", "Hday2night")


def write_dataset(root: Path, per_subset: int = 3, shape: tuple[int, int] = (40, 52)) -> None:
    """A tiny iHarmony4-layout root: RGB JPEGs, 0/255 RGB PNG masks, IHD_test.txt."""
    rng = np.random.default_rng(0)
    lines = []
    for subset in SUBSETS:
        for sub in ("composite_images", "masks", "real_images"):
            (root / subset / sub).mkdir(parents=True)
        for n in range(per_subset):
            image_id = f"d{n}-x" if subset == "Hday2night" else f"c{n}"
            real = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
            mask = np.zeros(shape, dtype=np.uint8)
            mask[8:24, 10 + n : 30 + n] = 255
            Image.fromarray(real).save(root / subset / "real_images" / f"{image_id}.jpg")
            Image.fromarray(np.stack([mask] * 3, -1)).save(
                root / subset / "masks" / f"{image_id}_1.png"
            )
            comp = np.where(mask[..., None] > 0, real // 2, real).astype(np.uint8)
            name = f"{image_id}_1_{n + 1}.jpg"
            Image.fromarray(comp).save(root / subset / "composite_images" / name)
            lines.append(f"{subset}/composite_images/{name}")
        names = [line.split("/")[-1] for line in lines if line.startswith(f"{subset}/")]
        (root / subset / f"{subset}_test.txt").write_text("\n".join(names) + "\n")
    (root / "IHD_test.txt").write_text("\n".join(lines) + "\n")


def write_model(folder: Path) -> Path:
    """An untrained mini-profile model directory (model.pt, config.json, summary.json)."""
    cfg = build_config("mini")
    folder.mkdir(parents=True)
    torch.save(build_model(cfg).state_dict(), folder / "model.pt")
    (folder / "config.json").write_text(json.dumps(cfg.to_dict()))
    (folder / "summary.json").write_text(json.dumps({"profile": "mini", "code_version": "abc"}))
    return folder


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    base = tmp_path_factory.mktemp("features")
    write_dataset(base / "data")
    return base, write_model(base / "models" / "full")


def run(base: Path, model: Path, *extra: str) -> tuple[int, Path]:
    out = base / "out" / "features.npz"
    argv = ["--checkpoint", str(model), "--data-root", str(base / "data"), "--out", str(out)]
    return main([*argv, "--size", "32", *extra]), out


def test_writes_background_only_maps_of_matching_levels(prepared):
    base, model = prepared
    rc, out = run(base, model, "--count", "3", "--channels", "2")
    assert rc == 0 and out.is_file()
    assert not list(out.parent.glob(".*tmp*")), "temporary file left behind"
    with np.load(out) as z:
        names = list(z["names"])
        assert z["composite"].shape == (3, 32, 32, 3) and z["composite"].dtype == np.uint8
        assert z["real"].shape == (3, 32, 32, 3)
        assert z["mask"].shape == (3, 32, 32) and set(np.unique(z["mask"])) <= {0, 1}
        depth = build_config("mini").model.depth
        assert list(z["levels"]) == list(range(1, depth))
        for i in z["levels"]:
            side = 32 // 2 ** (i - 1)
            bg = z[f"bg_{i}"]
            assert bg.shape == (3, side, side)
            for key in ("enc", "dec"):
                mean, chans = z[f"{key}_{i}"], z[f"{key}_ch_{i}"]
                assert mean.shape == (3, side, side) and mean.dtype == np.float32
                assert chans.shape == (3, 2, side, side) and chans.dtype == np.float16
                assert len(z[f"{key}_ch_index_{i}"]) == 2
                # background only: zero wherever the foreground is
                assert np.all(mean[bg == 0] == 0) and np.all(
                    chans.transpose(1, 0, 2, 3)[:, bg == 0] == 0
                )
                assert mean[bg == 1].max() > 0
        meta = json.loads(str(z["meta"]))
    # evenly spaced over the sorted list: first and last of the 6 lines
    assert names[0] == "HCOCO/c0_1_1"
    assert names[-1] == "Hday2night/d2-x_1_3"
    assert meta["profile"] == "mini" and meta["code_version"] == "abc" and meta["size"] == 32


def test_picks_are_deterministic(prepared):
    base, model = prepared
    _, out = run(base, model, "--pick", "random", "--seed", "3", "--count", "2")
    first = np.load(out)["names"].tolist()
    _, out = run(base, model, "--pick", "random", "--seed", "3", "--count", "2")
    assert np.load(out)["names"].tolist() == first


def test_subsets_restrict_the_picks(prepared):
    base, model = prepared
    rc, out = run(base, model, "--count", "3", "--subsets", "Hday2night")
    assert rc == 0
    assert [n.split("/")[0] for n in np.load(out)["names"]] == ["Hday2night"] * 3


def test_odd_sizes_are_cropped_to_the_image(prepared):
    base, model = prepared
    rc, out = run(base, model, "--count", "1", "--size", "36")
    assert rc == 0
    with np.load(out) as z:
        assert z["enc_1"].shape == (1, 36, 36) and z["dec_3"].shape == (1, 9, 9)


def test_bad_inputs_name_the_path(prepared, tmp_path, capsys):
    base, model = prepared
    out = tmp_path / "f.npz"
    missing = tmp_path / "nope"
    assert (
        main(["--checkpoint", str(missing), "--data-root", str(base / "data"), "--out", str(out)])
        == 1
    )
    assert f"checkpoint not found: {missing}" in capsys.readouterr().err
    assert main(["--checkpoint", str(model), "--data-root", str(missing), "--out", str(out)]) == 1
    assert f"data root not found: {missing}" in capsys.readouterr().err
    args = ["--checkpoint", str(model), "--data-root", str(base / "data"), "--out", str(out)]
    assert main([*args, "--count", "99"]) == 1
    assert "asked for 99 pairs" in capsys.readouterr().err
    assert not out.exists()


def test_a_missing_image_is_named(tmp_path, capsys):
    write_dataset(tmp_path / "data", per_subset=1)
    model = write_model(tmp_path / "model")
    gone = tmp_path / "data" / "HCOCO" / "real_images" / "c0.jpg"
    gone.unlink()
    argv = ["--checkpoint", str(model), "--data-root", str(tmp_path / "data")]
    assert main([*argv, "--out", str(tmp_path / "f.npz"), "--count", "2", "--size", "32"]) == 1
    assert str(gone) in capsys.readouterr().err
