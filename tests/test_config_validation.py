"""Every field of the typed config declares what it admits, and `config.validate` refuses the
rest in one line naming the key and the value: numbers their range (finite, positive where
they must be), strings their allowed values."""

from __future__ import annotations

import dataclasses
import math
import subprocess
import sys

import pytest

from regionharmony.config import SECTIONS, Config
from regionharmony.errors import ConfigError
from regionharmony.params import resolve_config


def numeric_fields() -> list[tuple[str, str, float, bool, float | None, type]]:
    out = []
    for section in SECTIONS:
        for f in dataclasses.fields(getattr(Config(), section)):
            if f.type in ("int", "float", int, float):
                low, above, high = f.metadata["range"]
                out.append((section, f.name, low, above, high, type(f.default)))
    return out


def test_every_number_and_string_declares_what_it_admits():
    for section in SECTIONS:
        for f in dataclasses.fields(getattr(Config(), section)):
            if isinstance(f.default, int | float) and not isinstance(f.default, bool):
                assert "range" in f.metadata, f"{section}.{f.name} has no range"
    assert len(numeric_fields()) >= 25


def bad_values(low: float, above: bool, high: float | None, kind: type) -> list[float]:
    values = [low - 1 if kind is int else low - 1e-3]
    if above:
        values.append(low)
    if high is not None:
        values.append(high + 1 if kind is int else high * 1.001 + 1e-3)
    if kind is float:
        values += [math.nan, math.inf, -math.inf]
    return values


@pytest.mark.parametrize(("section", "key", "low", "above", "high", "kind"), numeric_fields())
def test_out_of_range_numbers_are_refused_in_one_line(section, key, low, above, high, kind):
    for value in bad_values(low, above, high, kind):
        with pytest.raises(ConfigError) as err:
            resolve_config({}, overrides={section: {key: value}})
        message = str(err.value)
        assert f"{section}.{key}" in message and "\n" not in message
        assert str(value) in message, message


@pytest.mark.parametrize(
    ("section", "key", "value", "words"),
    [
        ("train", "lr", -0.001, "train.lr must be positive, got -0.001"),
        ("train", "lr", math.nan, "train.lr must be a finite number, got nan"),
        ("loss", "lambda_hcl", math.inf, "loss.lambda_hcl (lambda_3) must be a finite number"),
        ("loss", "temperature", 0.0, "loss.temperature (tau) must be positive, got 0.0"),
        ("train", "budget", 1.5, "train.budget must be in (0, 1], got 1.5"),
        ("train", "seed", -1, "train.seed must be at least 0, got -1"),
        ("train", "device", "gpu", "train.device must be one of auto, cpu, cuda, got 'gpu'"),
        ("model", "norm", "layer", "model.norm must be one of batch, instance, got 'layer'"),
    ],
)
def test_the_message_says_what_is_allowed(section, key, value, words):
    with pytest.raises(ConfigError, match=words.replace("(", r"\(").replace(")", r"\)")):
        resolve_config({}, overrides={section: {key: value}})


def test_values_in_range_pass():
    cfg = resolve_config({}, overrides={"train": {"device": "cuda", "lr": 2e-4, "budget": 1}})
    assert cfg.train.device == "cuda" and cfg.train.budget == 1.0


def test_a_yaml_nan_in_params_yaml_is_one_line_from_the_cli(tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text("profile: mini\nprofiles:\n  mini:\n    train:\n      lr: .nan\n")
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "regionharmony.cli",
            "train",
            "--params",
            str(params),
            "--data",
            str(tmp_path / "none"),
            "--out",
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert run.returncode != 0
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, run.stderr
    assert "profiles.mini" in lines[0] and "train.lr must be a finite number, got nan" in lines[0]
    assert not (tmp_path / "out").exists()
