"""`regionharmony user-study build`: matching, blindness, atomic output, named errors."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, PngImagePlugin
from study_helpers import KEYS, METHODS, cli, write_inputs

from regionharmony.study import build as user_study
from regionharmony.study.build import StudyError, build_study
from regionharmony.study.votes import fnv1a32, load_key, mulberry32, shuffled


@pytest.fixture
def inputs(tmp_path):
    return write_inputs(tmp_path / "in")


def test_build_writes_page_images_and_a_key_outside(inputs, tmp_path):
    group_dir, methods = inputs
    out = tmp_path / "study"
    key = build_study(group_dir, methods, out)
    assert sorted(p.name for p in out.iterdir()) == ["images", "index.html"]
    assert (tmp_path / "study.key.json").is_file()
    assert key["methods"] == ["composite", "full", "l1"]
    images = sorted(p.name for p in (out / "images").iterdir())
    assert len(images) == len(KEYS) * 3
    assert all(re.fullmatch(r"o[0-9a-f]{12}\.png", name) for name in images)
    loaded = load_key(tmp_path / "study.key.json")
    assert sorted(g.key for g in loaded.groups.values()) == sorted(KEYS)
    # every option's image is the method's image, re-encoded losslessly (PNG sources)
    group = next(g for g in loaded.groups.values() if g.key == "HFlickr/f9_1_2")
    for option, method in group.options.items():
        if method != "composite":
            built = np.asarray(Image.open(out / "images" / f"{option}.png"))
            source = np.asarray(Image.open(dict(methods)[method] / "HFlickr/f9_1_2.png"))
            assert np.array_equal(built, source)


def test_no_method_name_reaches_the_participant_folder(inputs, tmp_path):
    group_dir, methods = inputs
    out = tmp_path / "study"
    build_study(group_dir, methods, out)
    visible = [p.relative_to(out).as_posix() for p in out.rglob("*")]
    page = (out / "index.html").read_text(encoding="utf-8")
    for name in ("composite", *METHODS):
        assert name not in page.lower(), name
        assert not [v for v in visible if name in v.lower()], name
    # nor the group names (the key maps opaque group ids to them)
    for key in KEYS:
        assert key.split("/")[1] not in page
    manifest = json.loads(re.search(r'id="study-data">(.*?)</script>', page, re.S).group(1))
    for group in manifest["groups"]:
        assert group["options"] == sorted(group["options"])  # id order: a secret permutation
    assert "http://" not in page and "https://" not in page and "src=" not in page


def test_image_metadata_is_dropped(inputs, tmp_path):
    group_dir, methods = inputs
    info = PngImagePlugin.PngInfo()
    info.add_text("Software", "full model")
    for key in KEYS:
        path = dict(methods)["full"] / f"{key}.png"
        Image.open(path).save(path, pnginfo=info)
    out = tmp_path / "study"
    build_study(group_dir, methods, out)
    for path in (out / "images").iterdir():
        assert "Software" not in Image.open(path).info


def test_the_same_inputs_give_the_same_study(inputs, tmp_path):
    group_dir, methods = inputs
    first = build_study(group_dir, methods, tmp_path / "a")
    second = build_study(group_dir, methods, tmp_path / "b")
    assert first["study_id"] == second["study_id"]
    assert (tmp_path / "a" / "index.html").read_bytes() == (
        tmp_path / "b" / "index.html"
    ).read_bytes()
    # another image changes the study id (old votes would be rejected)
    path = dict(methods)["l1"] / f"{KEYS[0]}.png"
    Image.fromarray(np.zeros((16, 24, 3), np.uint8)).save(path)
    third = build_study(group_dir, methods, tmp_path / "c")
    assert third["study_id"] != first["study_id"]


def nothing_written(tmp_path: Path) -> bool:
    return not (tmp_path / "study").exists() and not (tmp_path / "study.key.json").exists()


def test_a_missing_image_is_named_before_anything_is_written(inputs, tmp_path):
    group_dir, methods = inputs
    (dict(methods)["l1"] / "HCOCO" / "c2_1_1.png").unlink()
    with pytest.raises(StudyError, match=r"method 'l1' .* lacks 1 of the 3 images.*HCOCO/c2_1_1"):
        build_study(group_dir, methods, tmp_path / "study")
    assert nothing_written(tmp_path)


def test_an_extra_image_is_named(inputs, tmp_path):
    group_dir, methods = inputs
    Image.new("RGB", (24, 16)).save(dict(methods)["full"] / "HCOCO" / "stray_1_1.png")
    with pytest.raises(StudyError, match=r"'full' .* 1 images that .* lacks: HCOCO/stray_1_1"):
        build_study(group_dir, methods, tmp_path / "study")
    assert nothing_written(tmp_path)


def test_a_size_mismatch_is_refused_unless_resizing(inputs, tmp_path):
    group_dir, methods = inputs
    path = dict(methods)["full"] / f"{KEYS[1]}.png"
    Image.new("RGB", (48, 32)).save(path)
    with pytest.raises(StudyError, match=rf"{re.escape(str(path))} is 48x32, the composite 24x16"):
        build_study(group_dir, methods, tmp_path / "study")
    assert nothing_written(tmp_path)
    build_study(group_dir, methods, tmp_path / "study", resize=True)
    sizes = {Image.open(p).size for p in (tmp_path / "study" / "images").iterdir()}
    assert sizes == {(24, 16)}


def test_an_unreadable_image_is_named(inputs, tmp_path):
    group_dir, methods = inputs
    broken = dict(methods)["l1"] / f"{KEYS[2]}.png"
    broken.write_bytes(b"not an image")
    with pytest.raises(StudyError, match=rf"{re.escape(str(broken))}: not a readable image"):
        build_study(group_dir, methods, tmp_path / "study")
    assert nothing_written(tmp_path)


def test_two_images_of_one_name_are_refused(inputs, tmp_path):
    group_dir, methods = inputs
    Image.new("RGB", (24, 16)).save(dict(methods)["full"] / f"{KEYS[0]}.jpg")
    with pytest.raises(StudyError, match="two images for 'HCOCO/c1_1_1'"):
        build_study(group_dir, methods, tmp_path / "study")


def test_names_and_places_are_checked(inputs, tmp_path):
    group_dir, methods = inputs
    with pytest.raises(StudyError, match="used twice"):
        build_study(group_dir, [*methods, ("full", methods[0][1])], tmp_path / "s")
    with pytest.raises(StudyError, match="used twice"):
        build_study(group_dir, [("composite", methods[0][1])], tmp_path / "s")
    with pytest.raises(StudyError, match="lies inside"):
        build_study(group_dir, methods, tmp_path / "s", key_path=tmp_path / "s" / "key.json")
    with pytest.raises(StudyError, match="names a method"):
        build_study(group_dir, methods, tmp_path / "s", title="Is Full better?")
    with pytest.raises(StudyError, match="no --method"):
        build_study(group_dir, [], tmp_path / "s")
    with pytest.raises(StudyError, match="not a folder"):
        build_study(tmp_path / "nowhere", methods, tmp_path / "s")
    with pytest.raises(StudyError, match="NAME=DIR"):
        user_study.parse_method("full")
    with pytest.raises(StudyError, match="letters, digits"):
        user_study.parse_method("my method=x")
    with pytest.raises(StudyError, match="letters, digits"):
        user_study.parse_method("full\n=x")
    assert not (tmp_path / "s").exists()


def test_an_existing_study_is_replaced_only_with_force(inputs, tmp_path):
    group_dir, methods = inputs
    out = tmp_path / "study"
    build_study(group_dir, methods, out)
    with pytest.raises(StudyError, match="--force"):
        build_study(group_dir, methods[:1], out)
    assert len(list((out / "images").iterdir())) == len(KEYS) * 3
    build_study(group_dir, methods[:1], out, force=True)
    assert len(list((out / "images").iterdir())) == len(KEYS) * 2
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_cli_build_and_its_one_line_errors(inputs, tmp_path, capsys):
    group_dir, methods = inputs
    argv = ["build", "--group-dir", str(group_dir), "--out", str(tmp_path / "study")]
    argv += [a for name, folder in methods for a in ("--method", f"{name}={folder}")]
    assert cli([*argv, "--key", str(tmp_path / "k.json")]) == 0
    assert "3 groups x 3 images" in capsys.readouterr().out
    assert load_key(tmp_path / "k.json").methods == ("composite", "full", "l1")
    assert cli(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "--force" in err
    assert cli(["tally", "--votes-dir", str(tmp_path), "--key", str(tmp_path / "none.json")]) == 1
    assert "key file not found" in capsys.readouterr().err


def test_the_shuffle_port_matches_known_values():
    # FNV-1a 32-bit test vectors
    assert fnv1a32("") == 0x811C9DC5
    assert fnv1a32("a") == 0xE40C292C
    assert fnv1a32("foobar") == 0xBF9CF968
    rng = mulberry32(1)
    values = [next(rng) for _ in range(1000)]
    assert all(0 <= v < 1 for v in values) and 0.45 < np.mean(values) < 0.55
    items = [f"o{i}" for i in range(6)]
    assert sorted(shuffled(items, 7)) == items and shuffled(items, 7) == shuffled(items, 7)
    orders = {tuple(shuffled(items[:3], seed)) for seed in range(200)}
    assert len(orders) == 6  # every permutation of three options occurs


def test_markup_in_the_title_is_escaped_and_the_manifest_holds_no_markup(inputs, tmp_path):
    group_dir, methods = inputs
    title = "<script>alert('RHXSS')</script> & <img src=x onerror=alert(1)>"
    build_study(group_dir, methods, tmp_path / "study", title=title)
    page = (tmp_path / "study" / "index.html").read_text(encoding="utf-8")
    assert "<script>alert" not in page and "<img src=x" not in page
    assert page.count("&lt;script&gt;alert(&#x27;RHXSS&#x27;)&lt;/script&gt; &amp; ") == 2
    manifest = re.search(r'id="study-data">(.*?)</script>', page, re.S).group(1)
    assert not set("<>&") & set(manifest)
    assert load_key(tmp_path / "study.key.json").study_id == json.loads(manifest)["study_id"]


def test_build_takes_groups_and_methods_from_params(inputs, tmp_path, capsys):
    """`build --params` (the pipeline's, and the paper block's DIH99 study): user_study's
    groups and methods; a missing folder is one line naming it, before anything is written."""
    import yaml

    group_dir, methods = inputs
    params = tmp_path / "params.yaml"
    spec = {"groups": str(group_dir), "methods": {name: str(folder) for name, folder in methods}}
    params.write_text(yaml.safe_dump({"user_study": spec}))
    out = tmp_path / "study"
    assert cli(["build", "--params", str(params), "--out", str(out)]) == 0
    assert list(load_key(tmp_path / "study.key.json").methods) == ["composite", "full", "l1"]
    spec["methods"]["RainNet"] = str(tmp_path / "results" / "RainNet")
    params.write_text(yaml.safe_dump({"user_study": spec}))
    assert cli(["build", "--params", str(params), "--out", str(tmp_path / "s2")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "missing: RainNet" in err[0] and not (tmp_path / "s2").exists()
    assert cli(["build", "--out", str(tmp_path / "s3")]) == 1  # neither --params nor --method
