"""Folder mode of `regionharmony harmonize`: which composite goes with which mask, and where its
result goes (masks by file-name suffix, in a mask folder, or from an iHarmony4 list)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from regionharmony.errors import HarmonizeError
from regionharmony.inference.user_images import (
    IMAGE_SUFFIXES,
    check_output_folder,
    remove_stale_temporaries,
)


@dataclass(frozen=True)
class Pair:
    """One job of folder mode: a composite, its mask, where the result goes."""

    name: str  # relative path of the composite, for messages
    composite: Path
    mask: Path | None  # None: not found (reported as a failed pair)
    out: Path


def _images(folder: Path, recursive: bool) -> list[Path]:
    pattern = "**/*" if recursive else "*"
    return sorted(
        p for p in folder.glob(pattern) if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
    )


def _find_image(stem_path: Path) -> Path | None:
    """The existing file `stem_path` + any image extension (lower or upper case)."""
    for suffix in IMAGE_SUFFIXES:
        for candidate in (suffix, suffix.upper()):
            path = stem_path.with_name(stem_path.name + candidate)
            if path.is_file():
                return path
    return None


def pairs_by_suffix(
    input_dir: Path,
    out_dir: Path,
    ext: str,
    mask_suffix: str,
    composite_suffix: str,
    recursive: bool,
) -> list[Pair]:
    """Composites `<base><composite_suffix>.<ext>` beside masks `<base><mask_suffix>.<ext>`."""
    pairs = []
    for path in _images(input_dir, recursive):
        stem = path.stem
        if mask_suffix and stem.endswith(mask_suffix):
            continue
        if not stem.endswith(composite_suffix):
            continue
        base = stem[: len(stem) - len(composite_suffix)] if composite_suffix else stem
        relative = path.relative_to(input_dir)
        pairs.append(
            Pair(
                str(relative),
                path,
                _find_image(path.with_name(base + mask_suffix)),
                (out_dir / relative).with_name(base + ext),
            )
        )
    return pairs


def pairs_by_mask_dir(
    input_dir: Path, mask_dir: Path, out_dir: Path, ext: str, recursive: bool
) -> list[Pair]:
    """Composites `input_dir/<rel>.<ext>` with masks of the same relative stem in `mask_dir`
    (the DIH99 layout: image/NAME.png + mask/NAME.png)."""
    pairs = []
    for path in _images(input_dir, recursive):
        relative = path.relative_to(input_dir)
        mask = _find_image(mask_dir / relative.with_suffix(""))
        pairs.append(Pair(str(relative), path, mask, (out_dir / relative).with_suffix(ext)))
    return pairs


def pairs_from_list(input_dir: Path, list_file: Path, out_dir: Path, ext: str) -> list[Pair]:
    """An iHarmony4 list (`Subset/composite_images/<id>_<maskid>_<k>.jpg` per line, relative to
    the dataset root `input_dir`); masks at `Subset/masks/<id>_<maskid>.png`; results at
    `out_dir/Subset/<name>.<ext>`."""
    from regionharmony.data.layout import DataError, make_sample, parse_ihd_entry, read_list

    try:
        entries = read_list(list_file)
        samples = [make_sample(input_dir, *parse_ihd_entry(entry)) for _, entry in entries]
    except (DataError, OSError) as err:
        raise HarmonizeError(f"{list_file}: {err}") from None
    return [
        Pair(
            f"{s.subset}/{s.composite.name}",
            s.composite,
            s.mask if s.mask.is_file() else None,
            out_dir / s.subset / (s.composite.stem + ext),
        )
        for s in samples
    ]


def resolved_or_self(path: Path) -> Path:
    """`path.resolve()`, or `path` itself when it cannot be resolved (a symlink loop: reading
    it reports the problem, for that pair alone)."""
    try:
        return path.resolve()
    except (OSError, RuntimeError):
        return path


def prepare_out_dir(out_dir: Path, pairs: list[Pair]) -> None:
    """Before any image is harmonised: `out_dir` created and writable (else HarmonizeError),
    and the temporaries that a killed run left in the result folders removed."""
    check_output_folder(out_dir, "--out-dir")
    for folder in sorted({pair.out.parent for pair in pairs}):
        remove_stale_temporaries(folder)
