"""`check-data`: every problem of an iHarmony4-layout root, one message each, naming the file.

Decoding every file is the slow part (about 1.5 h for iHarmony4 in one process): with
``workers`` the files are inspected by a process pool, in list order, and the problems are then
collected exactly as in one process, so the report is the same for any number of workers.
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from regionharmony.cpu_threads import usable_cpus
from regionharmony.data.images import mask_array, open_image
from regionharmony.data.layout import (
    OFFICIAL_COUNTS,
    OFFICIAL_TOTALS,
    SPLITS,
    SUBSETS,
    Sample,
    check_subsets,
    ihd_list_path,
    list_samples,
    make_sample,
    parse_ihd_entry,
    read_list,
    subset_list_path,
)
from regionharmony.errors import DataError
from regionharmony.io import atomic_write_text
from regionharmony.options import add_data_root, add_progress, add_split, add_subsets

MAX_LISTED_PROBLEMS = 10  # how many problems `require_valid_root` names in its error
CHUNK_FILES = 8  # files per task sent to a pool worker


def parse_workers(value: int | str) -> int | str:
    """A ``--workers`` value: a number of processes (0 or more) or "auto"."""
    text = str(value).strip().lower()
    if text == "auto":
        return "auto"
    if text.isdigit():
        return int(text)
    raise argparse.ArgumentTypeError(
        f"workers must be a number (0 or more) or 'auto', not {value!r}"
    )


@dataclass
class _FileInfo:
    size: tuple[int, int] | None = None  # (width, height)
    error: str | None = None
    empty: bool = False  # a mask without foreground
    full: bool = False  # a mask without background


def _inspect(path: Path, is_mask: bool, decode: bool) -> _FileInfo:
    try:
        with open_image(path, decode=decode) as image:
            if not (decode and is_mask):
                return _FileInfo(size=image.size)
            foreground = mask_array(image)
            return _FileInfo(
                size=image.size, empty=not foreground.any(), full=bool(foreground.all())
            )
    except DataError as err:
        return _FileInfo(error=str(err))


def _inspect_task(task: tuple[Path, bool, bool]) -> _FileInfo:
    return _inspect(*task)


def _files_to_inspect(samples: list[Sample]) -> dict[Path, bool]:
    """Every file `_check_files` inspects, in the order it first does, and whether it is read as
    a mask (the first use decides, as in its cache)."""
    files: dict[Path, bool] = {}
    for sample in samples:
        if not sample.composite.is_file():
            continue
        files.setdefault(sample.composite, False)
        if sample.mask.is_file():
            files.setdefault(sample.mask, True)
        if sample.real.is_file():
            files.setdefault(sample.real, False)
    return files


def _pool_context() -> multiprocessing.context.BaseContext:
    # fork starts a worker in milliseconds, without importing anything again; elsewhere (macOS,
    # Windows) the platform's default
    if "fork" in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context()


def _inspect_all(
    files: dict[Path, bool], decode: bool, workers: int, progress: bool
) -> Iterator[tuple[Path, _FileInfo]]:
    """(path, `_inspect` of it) for every file, in order, over `workers` processes."""
    tasks = [(path, is_mask, decode) for path, is_mask in files.items()]
    bar = tqdm(total=len(tasks), desc="checking", unit="file", disable=not progress)
    with ProcessPoolExecutor(workers, mp_context=_pool_context()) as pool:
        results = pool.map(_inspect_task, tasks, chunksize=CHUNK_FILES)
        for task, found in zip(tasks, results, strict=True):
            bar.update()
            yield task[0], found
    bar.close()


def resolve_workers(workers: int | str) -> int:
    """The number of processes a ``workers`` value asks for: "auto" is the usable CPUs; 0 and 1
    both mean this process alone."""
    workers = parse_workers(workers)
    return max(1, usable_cpus() if workers == "auto" else int(workers))


def _entries(path: Path, problems: list[str]) -> list[tuple[int, str]] | None:
    try:
        entries = read_list(path)
    except DataError as err:
        problems.append(str(err))
        return None
    for entry, n in Counter(e for _, e in entries).items():
        if n > 1:
            problems.append(f"{path}: {entry!r} is listed {n} times")
    return entries


def _check_lists(
    root: Path,
    split: str,
    subsets: list[str] | None,
    present: list[str],
    problems: list[str],
) -> tuple[list[Sample], dict[str, int], int | None]:
    """Problems of one split's lists; its samples, per-subset counts and the IHD total."""
    ihd = ihd_list_path(root, split)
    ihd_files: dict[str, set[str]] = {}
    ihd_total = None
    if ihd.is_file() or subsets is None:
        entries = _entries(ihd, problems)
        if entries is not None:
            ihd_total = len(entries)
            for lineno, entry in entries:
                try:
                    subset, filename = parse_ihd_entry(entry)
                except DataError as err:
                    problems.append(f"{ihd}:{lineno}: {err}")
                    continue
                ihd_files.setdefault(subset, set()).add(filename)
            for subset in sorted(set(ihd_files) - set(present), key=SUBSETS.index):
                if subsets is None:
                    problems.append(
                        f"{ihd}: lists {len(ihd_files[subset])} {subset} pairs, but the subset "
                        f"folder {root / subset} is missing (pass a subset selection to use a "
                        "root that holds only some subsets)"
                    )
    samples: list[Sample] = []
    counts: dict[str, int] = {}
    for subset in present:
        path = subset_list_path(root, subset, split)
        entries = _entries(path, problems)
        if entries is None:
            continue
        counts[subset] = len(entries)
        names = {e for _, e in entries}
        if ihd_total is not None:
            in_ihd = ihd_files.get(subset, set())
            for name in sorted(names - in_ihd):
                problems.append(f"{path}: {name!r} is not in {ihd}")
            for name in sorted(in_ihd - names):
                problems.append(f"{ihd}: '{subset}/composite_images/{name}' is not in {path}")
        for lineno, entry in entries:
            try:
                samples.append(make_sample(root, subset, entry))
            except DataError as err:
                problems.append(f"{path}:{lineno}: {err}")
    return samples, counts, ihd_total


def _check_counts(
    root: Path,
    split: str,
    counts: dict[str, int],
    ihd_total: int | None,
    check_total: bool,
    problems: list[str],
) -> None:
    if check_total and ihd_total is not None and ihd_total != OFFICIAL_TOTALS[split]:
        problems.append(
            f"{ihd_list_path(root, split)}: {ihd_total} {split} pairs, the official iHarmony4 "
            f"{split} split has {OFFICIAL_TOTALS[split]}"
        )
    for subset, n in counts.items():
        expected = OFFICIAL_COUNTS[split][subset]
        if n != expected:
            problems.append(
                f"{subset_list_path(root, subset, split)}: {n} pairs, the official {subset} "
                f"{split} split has {expected}"
            )


def full_mask_warning(mask: Path) -> str:
    return (
        f"{mask}: the mask covers the whole image (no background to harmonise against): "
        "foreground metrics equal whole-image ones there, and the style fusion falls back to "
        "mean 0 / std 1 for the empty background"
    )


def _check_files(
    samples: list[Sample],
    decode: bool,
    progress: bool,
    problems: list[str],
    warnings: list[str],
    workers: int | str = 1,
) -> None:
    info: dict[Path, _FileInfo] = {}
    reported: set[Path] = set()
    processes = resolve_workers(workers)
    if processes > 1:
        # open / decode every file in parallel first (at most one process per CHUNK_FILES
        # files); the loop below then only reads the results
        files = _files_to_inspect(samples)
        processes = min(processes, -(-len(files) // CHUNK_FILES))
        if processes > 1:
            info.update(_inspect_all(files, decode, processes, progress))
            progress = False

    def inspect(path: Path, is_mask: bool) -> _FileInfo:
        if path not in info:
            info[path] = _inspect(path, is_mask, decode)
        return info[path]

    def report(path: Path, message: str) -> None:
        if path not in reported:
            reported.add(path)
            problems.append(message)

    for sample in tqdm(samples, desc="checking", unit="pair", disable=not progress):
        if not sample.composite.is_file():
            report(sample.composite, f"{sample.composite}: listed composite has no file")
            continue
        composite = inspect(sample.composite, False)
        mask = inspect(sample.mask, True) if sample.mask.is_file() else None
        real = inspect(sample.real, False) if sample.real.is_file() else None
        if mask is None:
            report(sample.mask, f"{sample.mask}: mask of {sample.composite} missing")
        if real is None:
            report(sample.real, f"{sample.real}: real image of {sample.composite} missing")
        for path, found in (
            (sample.composite, composite),
            (sample.mask, mask),
            (sample.real, real),
        ):
            if found is not None and found.error:
                report(path, found.error)
        if mask is not None and mask.empty:
            report(sample.mask, f"{sample.mask}: empty mask (no pixel of channel 0 above 127)")
        if mask is not None and mask.full and sample.mask not in reported:
            reported.add(sample.mask)
            warnings.append(full_mask_warning(sample.mask))
        if composite.size is None:
            continue
        w, h = composite.size
        if mask is not None and mask.size is not None and mask.size != composite.size:
            problems.append(
                f"{sample.mask}: mask size {mask.size[0]}x{mask.size[1]} differs from composite "
                f"{sample.composite} size {w}x{h}"
            )
        if real is not None and real.size is not None and real.size != composite.size:
            problems.append(
                f"{sample.real}: real image size {real.size[0]}x{real.size[1]} differs from "
                f"composite {sample.composite} size {w}x{h}"
            )


def check_root(
    root: Path,
    splits: Sequence[str] = SPLITS,
    subsets: Sequence[str] | None = None,
    *,
    expect_official_counts: bool = False,
    decode: bool = True,
    progress: bool = False,
    warnings: list[str] | None = None,
    workers: int | str = 1,
) -> list[str]:
    """Every problem of an iHarmony4-layout root, one message each, naming the file.

    Checked: list files present and well formed (no duplicates; IHD lists and per-subset lists
    agree), every listed composite present with its mask and real image, every file readable
    (with `decode`, fully decoded, so truncation is caught; without, only the header is read),
    mask and real of the composite's size, masks not empty (with `decode`), and, with
    `expect_official_counts`, the official split sizes.

    Masks that cover the whole image (with `decode`) are usable but suspicious: one message
    each goes to `warnings`, when given, not to the problems.

    Without `subsets`, the subset folders present are checked; a subset missing entirely is
    allowed unless an IHD list references it. With `subsets`, only those are checked, and the
    IHD lists only where they exist.

    `workers`: processes that open (or decode) the files, a number or "auto" (the usable CPUs);
    1, the default, works in this process. The problems are the same, in the same order, for
    any number.
    """
    root = Path(root)
    if not root.is_dir():
        return [f"{root}: data root is not a directory"]
    try:
        selection = check_subsets(subsets)
    except DataError as err:
        return [str(err)]
    problems: list[str] = []
    if selection is None:
        present = [s for s in SUBSETS if (root / s).is_dir()]
        if not present:
            problems.append(f"{root}: none of the subset folders {', '.join(SUBSETS)} exists")
    else:
        present = [s for s in selection if (root / s).is_dir()]
        problems += [f"{root / s}: subset folder missing" for s in selection if s not in present]
    samples: list[Sample] = []
    for split in splits:
        if split not in SPLITS:
            problems.append(f"unknown split {split!r}; choose from {', '.join(SPLITS)}")
            continue
        split_samples, counts, ihd_total = _check_lists(root, split, selection, present, problems)
        samples += split_samples
        if expect_official_counts:
            _check_counts(root, split, counts, ihd_total, selection is None, problems)
    noted = [] if warnings is None else warnings
    _check_files(samples, decode, progress, problems, noted, workers)
    return problems


def require_valid_root(
    root: Path,
    split: str | None = None,
    subsets: list[str] | None = None,
    *,
    decode: bool = False,
) -> None:
    """Raise `DataError` naming the first problems of `root` (`check_root`), if it has any.

    By default only headers are read (quick even on the full dataset): decoding every image is
    the job of ``regionharmony check-data``, run once per dataset version, and the reader raises
    `DataError` naming the file for a file that turns out to be corrupt later.
    """
    problems = check_root(root, splits=[split] if split else SPLITS, subsets=subsets, decode=decode)
    if problems:
        shown = "\n".join(f"  - {p}" for p in problems[:MAX_LISTED_PROBLEMS])
        more = len(problems) - MAX_LISTED_PROBLEMS
        tail = f"\n  ... and {more} more" if more > 0 else ""
        raise DataError(
            f"{root} is not a usable iHarmony4-layout root ({len(problems)} problem(s)):\n"
            f"{shown}{tail}\nRun `regionharmony check-data --data-root {root}` for the full list."
        )


def count_pairs(
    root: Path, splits: Sequence[str] = SPLITS, subsets: Sequence[str] | None = None
) -> dict[str, dict[str, int]]:
    """{split: {subset: pairs}} from the lists the reader would use."""
    counts: dict[str, dict[str, int]] = {}
    for split in splits:
        per_subset = Counter(s.subset for s in list_samples(root, split, subsets))
        counts[split] = {s: per_subset[s] for s in SUBSETS if s in per_subset}
    return counts


def format_counts(counts: dict[str, dict[str, int]]) -> str:
    splits = list(counts)
    subsets = [s for s in SUBSETS if any(s in counts[sp] for sp in splits)]
    lines = [f"{'subset':<12}" + "".join(f"{sp:>8}" for sp in splits)]
    for subset in subsets:
        lines.append(f"{subset:<12}" + "".join(f"{counts[sp].get(subset, 0):>8}" for sp in splits))
    lines.append(f"{'All':<12}" + "".join(f"{sum(counts[sp].values()):>8}" for sp in splits))
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Validate an iHarmony4-layout dataset root and list every problem: missing list files, "
        "list entries without a file, composites without mask or real image, unreadable or "
        "truncated images (each image is fully decoded), size mismatches, empty masks, IHD and "
        "per-subset lists that disagree and, on request, split sizes that differ from the "
        "official ones (train 65742 / test 7404). Exits 1 with the list if there is any "
        "problem, 0 with the pair counts per subset and split. Masks that cover the whole "
        "image (nothing to harmonise against) are reported as warnings, not problems."
    )
    add_data_root(parser, "dataset root to check")
    add_split(parser, default="all", all_=True)
    add_subsets(
        parser,
        "check only these, through their own lists (default: every subset folder present, "
        "through IHD_<split>.txt)",
    )
    parser.add_argument(
        "--official-counts", action="store_true", help="also require the official split sizes"
    )
    parser.add_argument(
        "--profile",
        help="the pipeline's profile: 'paper' implies --official-counts, any other checks "
        "without counts",
    )
    parser.add_argument(
        "--no-decode",
        action="store_true",
        help="read image headers only (fast; misses truncated files and empty masks)",
    )
    parser.add_argument("--report", type=Path, help="also write the report to this file")
    parser.add_argument(
        "--workers",
        type=parse_workers,
        default="auto",
        help="processes that decode the files: a number (1: this process only) or 'auto' "
        "(default): the usable CPUs; the report is the same for any number",
    )
    add_progress(parser)


def run(args: argparse.Namespace) -> int:
    splits = list(SPLITS) if args.split == "all" else [args.split]
    official = args.official_counts or args.profile == "paper"
    warnings: list[str] = []
    problems = check_root(
        args.data_root,
        splits,
        args.subsets,
        expect_official_counts=official,
        decode=not args.no_decode,
        progress=not args.no_progress,
        warnings=warnings,
        workers=args.workers,
    )
    if problems:
        report = f"{args.data_root}: {len(problems)} problem(s)\n" + "".join(
            f"- {p}\n" for p in problems
        )
    else:
        counts = count_pairs(args.data_root, splits, args.subsets)
        checks = "decoded" if not args.no_decode else "headers read"
        counted = ", official split sizes" if official else ""
        report = (
            f"{args.data_root}: OK (every listed file present, {checks}{counted})\n"
            f"{format_counts(counts)}\n"
        )
    noted = "".join(f"warning: {w}\n" for w in warnings)
    if args.report:
        atomic_write_text(report + noted, args.report)
    (sys.stderr if problems else sys.stdout).write(report)
    sys.stderr.write(noted)  # warnings alone do not fail the check
    return 1 if problems else 0
