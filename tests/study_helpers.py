"""Shared by the user-study tests: input folders, the CLI, and the hand-computed votes."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from PIL import Image

from regionharmony.study import build as user_study
from regionharmony.study.votes import load_key, votes_payload

METHODS = ("full", "l1")
KEYS = ("HCOCO/c1_1_1", "HCOCO/c2_1_1", "HFlickr/f9_1_2")


def write_inputs(
    root: Path,
    keys: tuple[str, ...] = KEYS,
    methods: tuple[str, ...] = METHODS,
    size: tuple[int, int] = (24, 16),
) -> tuple[Path, list[tuple[str, Path]]]:
    """Composites as JPEG, method outputs as PNG, seeded random pixels."""
    rng = np.random.default_rng(0)
    folders = {"composite": root / "composites"} | {m: root / m for m in methods}
    for method, folder in folders.items():
        for key in keys:
            path = folder / f"{key}.{'jpg' if method == 'composite' else 'png'}"
            path.parent.mkdir(parents=True, exist_ok=True)
            pixels = rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
            Image.fromarray(pixels).save(path)
    return folders["composite"], [(m, folders[m]) for m in methods]


def cli(argv: list[str]) -> int:
    """`regionharmony user-study ARGV` through the module's add_arguments / run."""
    parser = argparse.ArgumentParser()
    user_study.add_arguments(parser)
    return user_study.run(parser.parse_args(argv))


# The hand-computed example: 3 participants, 2 groups, 3 candidates (composite, full, l1).
GROUPS = ("HCOCO/c1_1_1", "HFlickr/f9_1_2")
CHOICES = {
    "p1": {"HCOCO/c1_1_1": "full", "HFlickr/f9_1_2": "full"},
    "p2": {"HCOCO/c1_1_1": "l1", "HFlickr/f9_1_2": "full"},
    "p3": {"HCOCO/c1_1_1": "full", "HFlickr/f9_1_2": "composite"},
}


def write_votes(folder: Path, key_path: Path, choices: dict[str, dict], name: str = "") -> None:
    """One votes file per participant, as the page would export them (`votes_payload`)."""
    key = load_key(key_path)
    folder.mkdir(parents=True, exist_ok=True)
    for participant, picks in choices.items():
        payload = votes_payload(key, participant, picks, time="2025-01-01T00:00:00Z")
        (folder / f"{name or participant}.json").write_text(json.dumps(payload))
