"""Shared by the user-study tests: input folders, the CLI, and the hand-computed votes."""

from __future__ import annotations

import argparse
import json
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
from PIL import Image

from regionharmony.study import build as user_study
from regionharmony.study.votes import load_key, votes_payload

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "table5_user_study.ipynb"

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


# -- hostile inputs: every string a votes file, a file name or a folder name can carry ------------
# Each payload would run (and raise an alert) at once if it reached a page as markup; each holds
# the marker RHXSS, so an injected attribute or script is easy to find in the HTML.
HOSTILE_SUBSET = "<svg onload=alert('RHXSS-subset')>"
HOSTILE_GROUPS = (f"{HOSTILE_SUBSET}/c1_1_1", "HFlickr/f9_1_2")
HOSTILE_FILE = "<img src=x onerror=alert('RHXSS-file')>.json"
HOSTILE_CHOICE = "<script>alert('RHXSS-choice')</script>"
HOSTILE_PARTICIPANT = "<img src=x onerror=alert('RHXSS-participant')>"
HOSTILE_GROUP = "<iframe src=javascript:alert('RHXSS-group')></iframe>"
SPOOF_FILE = "spoof\x1b[2K\rok.json"  # an ANSI erase-line and a carriage return
HOSTILE_TITLE = "<img src=x onerror=alert('RHXSS-title')>"  # the study page's --title


def write_hostile_votes(folder: Path, key_path: Path) -> dict[str, str]:
    """Votes files (under `folder`) for a study built from `HOSTILE_GROUPS`: one accepted
    participant with a markup id, and rejected files whose names, choices, groups and
    participants carry markup or control characters. Returns the strings to look for."""
    key = load_key(key_path)
    picks = {group: "full" for group in HOSTILE_GROUPS}
    write_votes(folder, key_path, {HOSTILE_PARTICIPANT: picks, "p2": picks}, name="")
    write_votes(folder, key_path, {HOSTILE_PARTICIPANT: picks}, name="zz-duplicate")
    for participant, field, value in (
        ("p3", "choice", HOSTILE_CHOICE),
        ("p4", "group", HOSTILE_GROUP),
    ):
        payload = votes_payload(key, participant, picks)
        payload["votes"][0][field] = value
        (folder / f"{participant}.json").write_text(json.dumps(payload))
    (folder / HOSTILE_FILE).write_text("{")
    (folder / SPOOF_FILE).write_text("{")
    return {
        "subset": HOSTILE_SUBSET,
        "file": HOSTILE_FILE,
        "choice": HOSTILE_CHOICE,
        "participant": HOSTILE_PARTICIPANT,
        "group": HOSTILE_GROUP,
    }


def render_report(study: Path, votes: str, name: str, n_boot: int = 300) -> Path:
    """`regionharmony report` of the Table V notebook over `study/votes` and `study/study.key.json`
    (needs the `hermetic_kernel` fixture); returns the HTML's path (the executed notebook lies
    beside it, `.ipynb`)."""
    from regionharmony.cli import main as cli_main

    out = study / f"{name}.html"
    argv = [str(NOTEBOOK), "--out", str(out), "--cwd", str(ROOT), "--no-input"]
    argv += ["--executed-out", str(out.with_suffix(".ipynb"))]
    argv += ["-r", "votes_dir", str(study / votes), "-r", "key_path", str(study / "study.key.json")]
    argv += ["-r", "model_summary", "", "-p", "n_boot", str(n_boot)]
    assert cli_main(["report", *argv]) == 0
    return out


def hostile_study(root: Path) -> tuple[Path, dict[str, str]]:
    """A study over `HOSTILE_GROUPS`, titled `HOSTILE_TITLE`, built at root/study (key
    root/study.key.json), with `write_hostile_votes` in root/votes."""
    from regionharmony.study.build import build_study

    group_dir, methods = write_inputs(root / "in", keys=HOSTILE_GROUPS)
    build_study(group_dir, methods, root / "study", title=HOSTILE_TITLE)
    return root, write_hostile_votes(root / "votes", root / "study.key.json")


class PageParts(HTMLParser):
    """What a rendered page holds: every start tag with its attributes, the text of its scripts
    and the text a reader sees (character references decoded)."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.scripts: list[tuple[dict[str, str], str]] = []
        self.text = ""
        self._script: dict[str, str] | None = None
        self.feed(text)
        self.close()

    def handle_starttag(self, tag, attrs):
        attributes = {name: value or "" for name, value in attrs}
        self.tags.append((tag, attributes))
        if tag == "script":
            self._script = attributes
            self.scripts.append((attributes, ""))

    def handle_endtag(self, tag):
        if tag == "script":
            self._script = None

    def handle_data(self, data):
        if self._script is not None:
            attributes, body = self.scripts[-1]
            self.scripts[-1] = (attributes, body + data)
        else:
            self.text += data

    def injected(self) -> list[str]:
        """Markup that a hostile string could have planted: event-handler attributes,
        javascript: URLs, frames / svg / objects, images not embedded by the report, and any
        attribute or script holding the payloads' marker."""
        found = []
        for tag, attributes in self.tags:
            if tag in ("iframe", "frame", "svg", "object", "embed", "base"):
                found.append(f"<{tag}>")
            if tag == "img" and not attributes.get("src", "").startswith("data:image/png;base64,"):
                found.append(f"<img src={attributes.get('src')!r}>")
            for name, value in attributes.items():
                if name.startswith("on") or "javascript:" in value.lower() or "RHXSS" in value:
                    found.append(f"<{tag} {name}={value!r}>")
        found += [f"<script> {body[:60]!r}" for _, body in self.scripts if "RHXSS" in body]
        return found
