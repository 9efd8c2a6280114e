"""Data-loading throughput: one epoch of decoding + the training transform, on a dataset root and
on its `prepare`d (resized) copy, measured side by side in one run.

    python benchmarks/data_loading.py
        builds the embedded dataset with 1024 px images in a temporary folder, prepares a copy
        with longest side 256, and times both
    python benchmarks/data_loading.py --data-root data/iHarmony4 --prepared data/prepared

Prints images/s for each root and the speed-up of the prepared copy. The loader is the
trainer's: `HarmonyDataset` with the training transform (resize to --load-size, random crop of
--train-size, flip), batched by a torch DataLoader with --workers worker processes. The two roots
are timed alternately for --rounds rounds of one epoch each, after one warm-up epoch each, and
the median epoch of each is reported, so that a change of machine load during the run affects
both alike.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from regionharmony.data.dataset import HarmonyDataset
from regionharmony.data.mini import build_mini
from regionharmony.data.prepare import prepare_root


def epoch_seconds(root: Path, epoch: int, args: argparse.Namespace) -> tuple[int, float]:
    """(images, seconds) of one epoch over the train split of `root`."""
    dataset = HarmonyDataset(
        root, "train", args.subsets, train_size=args.train_size, load_size=args.load_size
    )
    dataset.set_epoch(0, epoch)
    loader = DataLoader(dataset, batch_size=args.batch_size, num_workers=args.workers)
    start = time.perf_counter()
    for _ in loader:
        pass
    return len(dataset), time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", type=Path, help="source root (default: a mini dataset)")
    parser.add_argument("--prepared", type=Path, help="its prepared copy (default: made here)")
    parser.add_argument(
        "--mini-size", type=int, default=1024, help="mini image size (default: 1024)"
    )
    parser.add_argument(
        "--longest-side", type=int, default=256, help="prepare's --longest-side (default: 256)"
    )
    parser.add_argument("--train-size", type=int, default=256, help="random crop (paper: 256)")
    parser.add_argument("--load-size", type=int, default=256, help="resize before the crop")
    parser.add_argument("--subsets", nargs="+", help="subsets to read (default: all)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--workers", type=int, default=0, help="DataLoader worker processes")
    parser.add_argument("--rounds", type=int, default=3, help="timed epochs per root")
    args = parser.parse_args()
    # as in a DataLoader worker: one torch thread (several threads only contend with each other
    # and with a concurrent process for the small per-image tensor operations)
    torch.set_num_threads(1)

    with tempfile.TemporaryDirectory(prefix="data-loading-") as scratch:
        source = args.data_root
        if source is None:
            source = Path(scratch) / "mini"
            start = time.perf_counter()
            build_mini(source, size=args.mini_size)
            print(
                f"built the mini dataset at {args.mini_size} px in "
                f"{time.perf_counter() - start:.1f} s"
            )
        prepared = args.prepared
        if prepared is None:
            prepared = Path(scratch) / "prepared"
            start = time.perf_counter()
            prepare_root(
                source,
                prepared,
                longest_side=args.longest_side,
                subsets=args.subsets,
                workers=1,
                progress=False,
            )
            print(
                f"prepared (longest side {args.longest_side}) in "
                f"{time.perf_counter() - start:.1f} s"
            )
        times: dict[Path, list[float]] = {source: [], prepared: []}
        for epoch in range(args.rounds + 1):  # epoch 0 warms up libraries and file cache
            for root in times:
                n, seconds = epoch_seconds(root, epoch, args)
                if epoch:
                    times[root].append(seconds)
    rates = {root: n / statistics.median(t) for root, t in times.items()}
    for label, root in (("source", source), ("prepared", prepared)):
        print(f"{label:<9}{root}: {n} images, {rates[root]:.1f} images/s")
    print(
        f"speed-up {rates[prepared] / rates[source]:.2f}x (median of {args.rounds} epochs, "
        f"resize to {args.load_size}, crop {args.train_size}, {args.workers} workers)"
    )


if __name__ == "__main__":
    main()
