"""Mistakes in params.yaml and --set: one line naming the file and the key, exit 1, nothing
written; every profile and variant is checked, also those not in use."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_helpers import files_of, one_error_line

from regionharmony.cli import main
from regionharmony.cli import main as cli_main
from regionharmony.config import ConfigError
from regionharmony.params import load_params, resolve_config

REPO = Path(__file__).resolve().parents[1]


BAD_PARAMS = {
    "yaml_syntax": (
        "profile: mini\nprofiles:\n  mini:\n    train: {epochs: 3\n    model: {depth: 4}\n",
        [],
        ["line 5, column 10", "YAML syntax error"],
    ),
    "key_typo": (
        "profile: mini\nprofiles:\n  mini:\n    train: {epoch: 3}\n",
        [],
        ["profiles.mini", "unknown parameter train.epoch", "allowed in train:", "epochs"],
    ),
    "wrong_type": (
        "profile: mini\nprofiles:\n  mini:\n    train: {epochs: three}\n",
        [],
        ["profiles.mini", "train.epochs must be an integer, got 'three'"],
    ),
    "float_without_dot": (
        "profile: mini\nprofiles:\n  mini:\n    train: {lr: 1e-3}\n",
        [],
        ["train.lr must be a number", "1.0e-3"],
    ),
    "profiles_not_a_mapping": (
        "profile: mini\nprofiles: [mini]\n",
        [],
        ["profiles must be a mapping"],
    ),
    "unknown_profile": (
        "profile: mini\nprofiles:\n  mini: {}\n",
        ["--profile", "big"],
        ["unknown profile 'big'", "choose one of mini, paper"],
    ),
    "unknown_variant": (
        "profile: mini\nprofiles:\n  mini: {}\n",
        ["--variant", "ful"],
        ["unknown variant 'ful'", "defines none"],
    ),
    "set_typo": (
        "profile: paper\n",
        ["--set", "train.epoch=3"],
        ["--set", "unknown parameter train.epoch", "epochs"],
    ),
    "set_not_yaml": ("profile: paper\n", ["--set", "train.epochs=["], ["--set", "train.epochs"]),
    "value_out_of_range": (
        "profile: paper\n",
        ["--set", "train.epochs=0"],
        ["with --set", "train.epochs must be at least 1, got 0"],
    ),
    "missing_file": (None, [], ["parameters file not found"]),
    "hcl_query_typo": (
        "profile: paper\n",
        ["--set", "loss.hcl_query=papr"],
        ["loss.hcl_query must be one of paper, truth_gated", "got 'papr'"],
    ),
    "patch_source_typo": (
        "profile: paper\n",
        ["--set", "loss.patch_source=pixels"],
        ["loss.patch_source must be one of image, sampling_map", "got 'pixels'"],
    ),
    "image_size_zero": (
        "profile: paper\n",
        ["--set", "train.image_size=0"],
        ["train.image_size must be at least 1, got 0"],
    ),
}


@pytest.mark.parametrize("command", ["train", "summary"])
@pytest.mark.parametrize("case", sorted(BAD_PARAMS))
def test_a_configuration_mistake_is_one_line_naming_file_and_key(
    case, command, tiny_root, tmp_path, capsys
):
    text, extra, expected = BAD_PARAMS[case]
    params = tmp_path / "params.yaml"
    if text is not None:
        params.write_text(text)
    argv = [command, "--params", str(params), *extra]
    out = tmp_path / "models" / "m"
    if command == "train":
        argv += ["--data-root", str(tiny_root), "--out", str(out), "--no-progress"]
    before = files_of(tmp_path)
    assert main(argv) == 1
    line = one_error_line(capsys)
    if "--set" not in extra:
        assert str(params) in line
    for part in expected:
        assert part in line, (part, line)
    assert files_of(tmp_path) == before and not out.parent.exists()


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
