"""Blind image-preference user study (Table V): build the static study page, tally its votes.

    regionharmony user-study build --group-dir COMPOSITES --method NAME=DIR [--method ...]
                                   --out study/ [--key study.key.json] [--composite-name NAME]
                                   [--title TEXT] [--resize-to-composite] [--force]
    regionharmony user-study tally --votes-dir DIR --key study.key.json [--json]

`tally` needs --votes-dir to be an existing folder (a missing one is an error, not "no votes");
an empty folder is a study without votes yet.

The paper (Sec. IV-C, Fig. 3, Table V) shows each participant groups of images (the composite
and the results of several methods) in a shuffled order, without labels, and counts how often
each method is picked as the aesthetically best.

Groups: every image under --group-dir (recursively) is one group, named by its path relative to
the folder without the extension (`HCOCO/a_1_1.jpg` -> `HCOCO/a_1_1`). Every --method folder must
hold exactly these names (any image extension); the composite itself is a candidate too, under
--composite-name (default `composite`, the paper's "Copy-paste"). A name missing from a method
folder, an extra one, an unreadable image or a size that differs from the composite's (unless
--resize-to-composite) is an error naming the files, raised before anything is written.

What is written (the participant folder appears at once, through a temporary sibling):

    OUT/index.html              the page: inline CSS/JS, the study manifest embedded as JSON
    OUT/images/<option id>.png  every candidate, re-encoded as RGB PNG (no metadata survives)
    KEY (default OUT.key.json)  the key: option id -> method, group id -> group name; kept
                                OUTSIDE the participant folder, needed by the tally

Blindness: option ids are salted hashes of (group, method), group ids salted hashes of the
group name; the page lists each group's options in id order, i.e. a secret random order, and
shuffles them again per participant. The salt and the study id are hashes of the whole input
(method names bound to their image bytes), so rebuilding from the same inputs gives the same
study (votes stay valid), while a participant cannot recompute the mapping. The builder refuses a
title in which a method name appears as a word.

The page works from `file://` (open OUT/index.html) and from any static server
(`python -m http.server -d OUT`). Give participants OUT alone (copy it, or serve OUT, not its
parent): the key beside it names every image's method. The page shows text only through
`textContent` (a participant id is never parsed as HTML) and embeds the manifest as JSON with
`<`, `>` and `&` escaped. Messages show paths and names through `votes.shown` / `votes.quoted`
(control characters escaped). See templates/user_study.html,
regionharmony.study.votes and regionharmony.study.preference.
"""

from __future__ import annotations

import argparse
import hashlib
import html
import json
import re
import sys
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError

from regionharmony.errors import UserError
from regionharmony.io import atomic_directory, atomic_write_text, code_version
from regionharmony.study.preference import tally
from regionharmony.study.votes import (
    FORMAT_VERSION,
    KEY_FORMAT,
    METHOD_NAME,
    VotesError,
    quoted,
    shown,
)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
DEFAULT_TITLE = "Which image looks best?"
MAX_LISTED = 5  # names listed in an error


class StudyError(UserError, ValueError):
    """Inputs a study cannot be built from; the message names the files."""


@dataclass(frozen=True)
class Candidate:
    """One image of one group: which method, which file."""

    method: str
    path: Path


def _listing(items: list[str]) -> str:
    listed = ", ".join(shown(item) for item in items[:MAX_LISTED])
    return listed + (f" and {len(items) - MAX_LISTED} more" if len(items) > MAX_LISTED else "")


def image_files(folder: Path) -> dict[str, Path]:
    """Image files under `folder` by key (relative path without extension, '/' separated)."""
    if not folder.is_dir():
        raise StudyError(f"{shown(folder)}: not a folder")
    found: dict[str, Path] = {}
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if any(part.startswith(".") for part in relative.parts):
            continue
        if not path.is_file() or path.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        key = relative.with_suffix("").as_posix()
        if key in found:
            raise StudyError(
                f"{shown(folder)}: two images for {quoted(key)}: {shown(found[key].name)}, "
                f"{shown(path.name)}"
            )
        found[key] = path
    return found


def parse_method(spec: str) -> tuple[str, Path]:
    """`NAME=DIR` -> (NAME, DIR)."""
    name, sep, folder = spec.partition("=")
    if not (sep and folder):
        raise StudyError(f"--method expects NAME=DIR, got {quoted(spec)}")
    if not METHOD_NAME.match(name):
        raise StudyError(f"--method {quoted(spec)}: a name is letters, digits and _ . + - only")
    return name, Path(folder)


def match_groups(
    group_dir: Path, methods: list[tuple[str, Path]], composite_name: str
) -> dict[str, list[Candidate]]:
    """Group key -> candidates (composite first, then the methods in the given order)."""
    names = [composite_name] + [name for name, _ in methods]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise StudyError(
            f"method name used twice (the composite is {quoted(composite_name)}): "
            + ", ".join(map(quoted, repeated))
        )
    if not methods:
        raise StudyError(
            "no --method given: a study compares at least one method with the composite"
        )
    groups = image_files(group_dir)
    if not groups:
        raise StudyError(f"{shown(group_dir)}: no images ({', '.join(IMAGE_SUFFIXES)})")
    out = {key: [Candidate(composite_name, path)] for key, path in groups.items()}
    for name, folder in methods:
        files = image_files(folder)
        missing = sorted(set(groups) - set(files))
        extra = sorted(set(files) - set(groups))
        if missing:
            raise StudyError(
                f"method {name!r} ({shown(folder)}) lacks {len(missing)} of the {len(groups)} "
                f"images of {shown(group_dir)}: {_listing(missing)}"
            )
        if extra:
            raise StudyError(
                f"method {name!r} ({shown(folder)}) has {len(extra)} images that "
                f"{shown(group_dir)} lacks: {_listing(extra)}"
            )
        for key in groups:
            out[key].append(Candidate(name, files[key]))
    return out


def open_rgb(path: Path) -> Image.Image:
    """The image as RGB; StudyError naming the file if it cannot be decoded."""
    try:
        with Image.open(path) as image:
            image.load()
            return image.convert("RGB")
    except (OSError, UnidentifiedImageError) as err:
        raise StudyError(f"{shown(path)}: not a readable image ({err})") from err


def check_images(groups: dict[str, list[Candidate]], resize: bool) -> str:
    """Decode every image and compare its size with the composite's; return the input digest.

    The digest binds each method name to the bytes of its images (sha256), so the salt derived
    from it cannot be recomputed without knowing which image is which method.
    """
    digest = hashlib.sha256()
    mismatched = []
    for key in sorted(groups):
        sizes = {}
        for candidate in groups[key]:
            sizes[candidate.method] = open_rgb(candidate.path).size
            digest.update(f"{key}\x1f{candidate.method}\x1f".encode())
            digest.update(hashlib.sha256(candidate.path.read_bytes()).digest())
        reference = sizes[groups[key][0].method]
        mismatched += [
            f"{shown(c.path)} is {sizes[c.method][0]}x{sizes[c.method][1]}, the composite "
            f"{reference[0]}x{reference[1]}"
            for c in groups[key][1:]
            if sizes[c.method] != reference
        ]
    if mismatched and not resize:
        raise StudyError(
            f"{len(mismatched)} images differ in size from their composite (a size would "
            f"tell the methods apart; pass --resize-to-composite): {_listing(mismatched)}"
        )
    return digest.hexdigest()


def opaque(salt: str, *parts: str, length: int = 12) -> str:
    return hashlib.sha256("\x1f".join((salt, *parts)).encode()).hexdigest()[:length]


def plan_study(
    groups: dict[str, list[Candidate]], digest: str, composite_name: str
) -> tuple[str, list[dict[str, Any]]]:
    """(study id, key groups): opaque group and option ids, options sorted by id."""
    study_id = "s" + hashlib.sha256(f"study-id\x1f{digest}".encode()).hexdigest()[:12]
    salt = hashlib.sha256(f"salt\x1f{digest}".encode()).hexdigest()
    planned = []
    for key, candidates in groups.items():
        options = [
            {
                "id": "o" + opaque(salt, "option", key, c.method),
                "method": c.method,
                "source": str(c.path),
            }
            for c in candidates
        ]
        planned.append(
            {
                "id": "g" + opaque(salt, "group", key, length=10),
                "key": key,
                "options": sorted(options, key=lambda o: o["id"]),
            }
        )
    planned.sort(key=lambda g: g["id"])
    ids = [o["id"] for g in planned for o in g["options"]] + [g["id"] for g in planned]
    if len(set(ids)) != len(ids):  # 48-bit hashes: practically never
        raise StudyError("opaque id collision; rename one input and build again")
    return study_id, planned


def render_page(study_id: str, title: str, planned: list[dict[str, Any]]) -> str:
    """The page: the template with the title and the manifest (ids only, no methods)."""
    manifest = {
        "study_id": study_id,
        "groups": [{"id": g["id"], "options": [o["id"] for o in g["options"]]} for g in planned],
    }
    data = json.dumps(manifest, separators=(",", ":"))
    # inside <script>: no `<`, `>` or `&` at all (JSON reads the \u escapes back)
    data = data.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    template = resources.files("regionharmony.study").joinpath("templates/user_study.html")
    page = template.read_text(encoding="utf-8")
    return page.replace("__TITLE__", html.escape(title)).replace("__STUDY_DATA__", data)


def revealed_methods(text: str, methods: list[str]) -> list[str]:
    """Methods whose name occurs in `text` as a word (case-insensitive)."""
    return [
        m
        for m in methods
        if re.search(rf"(?<![A-Za-z0-9]){re.escape(m)}(?![A-Za-z0-9])", text, re.IGNORECASE)
    ]


def default_key_path(out: Path) -> Path:
    """OUT.key.json beside the participant folder."""
    return out.with_name(out.name + ".key.json")


def build_study(
    group_dir: Path,
    methods: list[tuple[str, Path]],
    out: Path,
    key_path: Path | None = None,
    composite_name: str = "composite",
    title: str = DEFAULT_TITLE,
    resize: bool = False,
    force: bool = False,
) -> dict[str, Any]:
    """Check every input, then write the participant folder and the key; return the key."""

    out = Path(out)
    key_path = Path(key_path) if key_path else default_key_path(out)
    if key_path.resolve().is_relative_to(out.resolve()):
        raise StudyError(
            f"--key {shown(key_path)} lies inside {shown(out)}: participants would see it"
        )
    if not METHOD_NAME.match(composite_name):
        raise StudyError(
            f"--composite-name {quoted(composite_name)}: letters, digits, _ . + - only"
        )
    names = [composite_name] + [name for name, _ in methods]
    leaked = revealed_methods(title, names)
    if leaked:
        raise StudyError(f"--title {quoted(title)} names a method ({', '.join(leaked)})")
    groups = match_groups(Path(group_dir), methods, composite_name)
    digest = check_images(groups, resize)
    study_id, planned = plan_study(groups, digest, composite_name)
    page = render_page(study_id, title, planned)
    key = {
        "format": KEY_FORMAT,
        "version": FORMAT_VERSION,
        "study_id": study_id,
        "title": title,
        "composite": composite_name,
        "methods": names,
        "sources": {composite_name: str(group_dir), **{n: str(d) for n, d in methods}},
        "participant_folder": str(out),
        "code_version": code_version(),
        "groups": planned,
    }
    try:
        with atomic_directory(out, replace=force) as tmp:
            (tmp / "images").mkdir()
            for group in planned:
                write_group_images(group, composite_name, tmp / "images")
            (tmp / "index.html").write_text(page, encoding="utf-8")
            atomic_write_text(json.dumps(key, indent=1) + "\n", key_path)
    except FileExistsError as err:
        raise StudyError(str(err)) from err
    return key


def write_group_images(group: dict[str, Any], composite_name: str, folder: Path) -> None:
    """Every option of a group as `<id>.png`, RGB without metadata, at the composite's size
    (only --resize-to-composite lets sizes differ this far)."""
    sources = {o["method"]: Path(o["source"]) for o in group["options"]}
    size = open_rgb(sources[composite_name]).size
    for option in group["options"]:
        image = open_rgb(Path(option["source"]))
        if image.size != size:
            image = image.resize(size, Image.Resampling.BICUBIC)
        image.save(folder / f"{option['id']}.png", format="PNG")


# -- command line ---------------------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    """`build` and `tally` sub-subcommands."""
    sub = parser.add_subparsers(dest="study_command", required=True)
    build = sub.add_parser(
        "build",
        help="write a self-contained blind study page (+ its key, outside the page's folder)",
        description="Write OUT/index.html and OUT/images/ (opaque names) and the key file.",
    )
    build.add_argument(
        "--group-dir",
        type=Path,
        help="the composites: one image per group (searched recursively)",
    )
    build.add_argument(
        "--method",
        action="append",
        default=[],
        metavar="NAME=DIR",
        help="a method's outputs, one image per group, same names (repeatable)",
    )
    build.add_argument(
        "--params",
        type=Path,
        metavar="PARAMS_YAML",
        help="take the groups and the methods from its `user_study: {groups: DIR, methods: "
        "{NAME: DIR}}` (what `dvc repro` does; the paper block: DIH99 and the methods' saved "
        "outputs) instead of --group-dir and --method",
    )
    build.add_argument("--out", type=Path, required=True, help="the participant folder to write")
    build.add_argument(
        "--key", type=Path, help="the key file (default: OUT.key.json beside OUT); never inside OUT"
    )
    build.add_argument(
        "--composite-name",
        default="composite",
        help="the method name of the composites (default: composite)",
    )
    build.add_argument("--title", default=DEFAULT_TITLE, help="the page title")
    build.add_argument(
        "--resize-to-composite",
        action="store_true",
        help="resize candidates whose size differs from the composite's (default: an error)",
    )
    build.add_argument("--force", action="store_true", help="replace OUT if it exists")
    count = sub.add_parser(
        "tally",
        help="votes per method, preference, strengths and agreement of a folder of votes files",
    )
    count.add_argument(
        "--votes-dir",
        type=Path,
        required=True,
        help="folder of exported votes files (*.json, searched recursively)",
    )
    count.add_argument("--key", type=Path, required=True, help="the study's key file")
    count.add_argument("--bootstrap", type=int, default=2000, help="bootstrap replicates")
    count.add_argument("--json", action="store_true", help="print JSON")


def study_inputs(args: argparse.Namespace) -> tuple[Path, list[tuple[str, Path]]]:
    """The groups folder and the methods, from --params or from --group-dir and --method."""
    if args.params is None:
        if args.group_dir is None or not args.method:
            raise StudyError("give --group-dir and at least one --method, or --params")
        return args.group_dir, [parse_method(spec) for spec in args.method]
    from regionharmony.params import load_params

    spec = load_params(args.params).get("user_study") or {}
    groups, methods = spec.get("groups"), spec.get("methods") or {}
    if not groups or not isinstance(methods, dict) or not methods:
        raise StudyError(
            f"{args.params}: user_study needs groups: DIR and methods: {{NAME: DIR}}, got {spec!r}"
        )
    inputs = [parse_method(f"{name}={folder}") for name, folder in methods.items()]
    folders = [("groups", Path(groups)), *inputs]
    missing = [f"{name} ({shown(folder)})" for name, folder in folders if not folder.is_dir()]
    if missing:
        raise StudyError(
            f"{args.params}: user_study folder(s) missing: {', '.join(missing)} (the paper "
            "block's DIH99 and its methods' saved outputs: docs/user-study.md)"
        )
    return Path(groups), inputs


def run_build(args: argparse.Namespace) -> int:
    group_dir, methods = study_inputs(args)
    key = build_study(
        group_dir,
        methods,
        args.out,
        args.key,
        args.composite_name,
        args.title,
        args.resize_to_composite,
        args.force,
    )
    key_path = args.key or default_key_path(args.out)
    print(
        f"wrote {shown(Path(args.out) / 'index.html')}: study {key['study_id']}, "
        f"{len(key['groups'])} groups x {len(key['methods'])} images; key (keep it from "
        f"participants): {shown(key_path)}"
    )
    return 0


def check_votes_dir(folder: Path) -> None:
    """A VotesError (one line `error: ...`, exit 1) unless `folder` is an existing folder: a
    mistyped --votes-dir must not read as a study without votes."""
    if not folder.exists():
        raise VotesError(f"votes folder {shown(folder)} does not exist")
    if not folder.is_dir():
        raise VotesError(f"votes folder {shown(folder)} is not a folder")


def run_tally(args: argparse.Namespace) -> int:
    check_votes_dir(Path(args.votes_dir))
    result = tally(args.votes_dir, args.key, n_boot=args.bootstrap)
    for _, message in result.loaded.rejected:
        print(f"rejected: {message}", file=sys.stderr)
    if args.json:
        payload = {
            "study_id": result.key.study_id,
            "participants": int(result.participants) if not result.choices.empty else 0,
            "votes": int(result.table["votes"].sum()),
            "rejected": [str(path) for path, _ in result.loaded.rejected],
            "methods": json.loads(result.table.to_json(orient="index")),
            "agreement": result.agreement,
        }
        print(json.dumps(payload, indent=2))
        return 0
    if result.choices.empty:
        print(f"no votes in {shown(args.votes_dir)} for study {result.key.study_id}")
        return 0
    ranked = result.table.sort_values("rank")
    print(
        f"study {result.key.study_id}: {result.participants} participants, "
        f"{int(ranked['votes'].sum())} votes"
    )
    print(ranked.round(3).to_string())
    print(
        f"Fleiss' kappa {result.agreement['kappa']:.3f} over "
        f"{int(result.agreement['groups'])} groups"
    )
    return 0


def run(args: argparse.Namespace) -> int:
    try:
        if args.study_command == "build":
            return run_build(args)
        return run_tally(args)
    except (StudyError, VotesError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="regionharmony user-study",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
