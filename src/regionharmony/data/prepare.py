"""`prepare`: a resized copy of a root in the same layout (the resize cache training reads)."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from regionharmony.data.check import require_valid_root
from regionharmony.data.images import (
    mask_array,
    open_image,
    resize_binary_mask,
    resize_image,
    rgb_array,
)
from regionharmony.data.layout import (
    JPEG_SETTINGS,
    SPLITS,
    SUBSETS,
    check_subsets,
    ihd_list_path,
    list_samples,
    read_list,
    subset_list_path,
)
from regionharmony.io import atomic_directory
from regionharmony.options import add_data_root, add_progress, add_subsets


def target_size(
    size: tuple[int, int], longest_side: int | None, square: int | None
) -> tuple[int, int]:
    """(width, height) after `prepare`: a square, or the longest side capped (never enlarged)."""
    if square is not None:
        return square, square
    assert longest_side is not None
    w, h = size
    if max(w, h) <= longest_side:
        return w, h
    scale = longest_side / max(w, h)
    return max(1, round(w * scale)), max(1, round(h * scale))


def _prepare_file(job: tuple[Path, Path, bool, int | None, int | None, int]) -> bool:
    """Write one resized file; return whether it was resized (else copied byte for byte)."""
    src, dst, is_mask, longest_side, square, quality = job
    with open_image(src) as image:
        size = target_size(image.size, longest_side, square)
        if size == image.size:
            shutil.copyfile(src, dst)
            return False
        if is_mask:
            mask = resize_binary_mask(mask_array(image), size).astype(np.uint8) * 255
            Image.fromarray(np.repeat(mask[..., None], 3, axis=2)).save(dst, format="PNG")
        else:
            out = Image.fromarray(resize_image(rgb_array(image), size))
            out.save(dst, format="JPEG", **{**JPEG_SETTINGS, "quality": quality})
    return True


def prepare_root(
    src: Path,
    dst: Path,
    *,
    longest_side: int | None = None,
    square: int | None = None,
    subsets: Sequence[str] | None = None,
    quality: int = 95,
    workers: int = 1,
    force: bool = False,
    progress: bool = True,
) -> dict[str, int]:
    """Write a resized copy of `src` at `dst` in the same layout (the resize cache of
    docs/paper-run.md, 'The dataset: iHarmony4').

    Composites and reals are resized bicubic and saved as JPEG (`quality`, 4:4:4 chroma), masks
    binarised, resized nearest and saved as RGB PNG 0/255. With `longest_side`, images whose
    longest side is at most that are copied byte for byte; with `square`, every image becomes
    square x square. Lists are copied; with `subsets`, the IHD lists keep only those subsets'
    lines. `dst` appears only when complete (temporary sibling, then rename).
    Returns counts: files resized, copied, lists written and unlisted files left out.
    """
    if (longest_side is None) == (square is None):
        raise ValueError("give exactly one of longest_side and square")
    if (longest_side or square or 0) < 1:
        raise ValueError("the target size must be positive")
    src, dst = Path(src), Path(dst)
    selection = check_subsets(subsets)
    require_valid_root(src, subsets=selection)
    chosen = selection or [s for s in SUBSETS if (src / s).is_dir()]

    jobs: dict[Path, bool] = {}  # source file -> is a mask
    for split in SPLITS:
        for sample in list_samples(src, split, chosen):
            jobs.setdefault(sample.composite, False)
            jobs.setdefault(sample.mask, True)
            jobs.setdefault(sample.real, False)
    stats = {"resized": 0, "copied": 0, "lists": 0, "unlisted": 0}
    for subset in chosen:
        for folder in ("composite_images", "masks", "real_images"):
            stats["unlisted"] += sum(1 for p in (src / subset / folder).iterdir() if p not in jobs)

    with atomic_directory(dst, replace=force) as tmp:
        for subset in chosen:
            for folder in ("composite_images", "masks", "real_images"):
                (tmp / subset / folder).mkdir(parents=True)
            for split in SPLITS:
                shutil.copyfile(
                    subset_list_path(src, subset, split), subset_list_path(tmp, subset, split)
                )
                stats["lists"] += 1
        for split in SPLITS:
            ihd = ihd_list_path(src, split)
            if not ihd.is_file():
                print(f"note: {ihd} does not exist; the copy has none either", file=sys.stderr)
                continue
            lines = [e for _, e in read_list(ihd) if e.split("/")[0] in chosen]
            ihd_list_path(tmp, split).write_text("".join(f"{line}\n" for line in lines))
            stats["lists"] += 1
        tasks = [
            (path, tmp / path.relative_to(src), is_mask, longest_side, square, quality)
            for path, is_mask in jobs.items()
        ]
        bar = tqdm(total=len(tasks), desc="prepare", unit="file", disable=not progress)
        if workers > 1:
            with ProcessPoolExecutor(workers) as pool:
                results = pool.map(_prepare_file, tasks, chunksize=16)
                for resized in results:
                    stats["resized" if resized else "copied"] += 1
                    bar.update()
        else:
            for task in tasks:
                stats["resized" if _prepare_file(task) else "copied"] += 1
                bar.update()
        bar.close()
    return stats


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Write a resized copy of an iHarmony4-layout root in the same layout, so that training "
        "does not decode the full-size originals (HAdobe5k: up to 6048 px) every epoch. "
        "Composites and reals: bicubic, JPEG; masks: binarised, nearest, PNG 0/255. List files "
        "are copied. The output appears only when complete."
    )
    add_data_root(parser, "source dataset root")
    parser.add_argument(
        "--out", type=Path, required=True, metavar="DST", help="directory to create"
    )
    size = parser.add_mutually_exclusive_group(required=True)
    size.add_argument(
        "--longest-side",
        type=int,
        help="shrink images whose longest side exceeds this, keeping the aspect ratio "
        "(smaller images are copied unchanged)",
    )
    size.add_argument("--square", type=int, help="resize every image to SQUARE x SQUARE")
    add_subsets(parser, "copy only these (default: all present)")
    parser.add_argument("--quality", type=int, default=95, help="JPEG quality (default: 95)")
    parser.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        help="parallel processes (default: the number of CPUs)",
    )
    parser.add_argument("--force", action="store_true", help="replace an existing --out")
    add_progress(parser)


def run(args: argparse.Namespace) -> int:
    stats = prepare_root(
        args.data_root,
        args.out,
        longest_side=args.longest_side,
        square=args.square,
        subsets=args.subsets,
        quality=args.quality,
        workers=args.workers,
        force=args.force,
        progress=not args.no_progress,
    )
    print(
        f"{args.out}: {stats['resized']} files resized, {stats['copied']} copied unchanged, "
        f"{stats['lists']} list files written"
    )
    if stats["unlisted"]:
        print(f"{stats['unlisted']} files in {args.data_root} that no list names were not copied")
    return 0
