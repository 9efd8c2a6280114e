"""Evaluation speed: the IIH-mode SSIM (old 2-D correlate vs the separable one) and the
`evaluate` / `check-data` throughput with and without worker processes, side by side in one run.

    python benchmarks/metrics_speed.py
        SSIM per image at 256 and 1024 px; evaluate and check-data on the embedded dataset built
        with 1024 px images in a temporary folder, in this process and with --workers processes
    python benchmarks/metrics_speed.py --data-root data/iHarmony4 --limit 50
    python benchmarks/metrics_speed.py --quick      (tiny sizes: a smoke test of a few seconds)

Prints the machine's cores and one table: seconds per image of the 2-D ``scipy.ndimage.correlate``
SSIM that `metrics.iih_ssim_map` used before (kept here, verbatim, as the reference) and of the
package's separable one, with their largest difference; items per second of
`evaluate_model` (identity baseline, pairs/s) and `check_root` (decoding, files/s) with 0 / 1
(in this process) and N workers (default: what `--workers auto` picks for each command), and
whether the results are identical. The two sides of a row run alternately, --repeat rounds; an
SSIM time is the fastest round (one thread of deterministic work: slower rounds are other
processes' doing), an evaluate / check-data time the median round.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from scipy.ndimage import correlate

from regionharmony.cpu_threads import usable_cpus
from regionharmony.data.check import _files_to_inspect, check_root, resolve_workers
from regionharmony.data.layout import SPLITS, list_samples
from regionharmony.data.mini import build_mini
from regionharmony.evaluation.evaluate import auto_workers, evaluate_model
from regionharmony.evaluation.metrics import gaussian_window, iih_ssim_map


def ssim_map_2d(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """`iih_ssim_map` as it was: a non-separable 11 x 11 correlate per channel."""
    window = gaussian_window()

    def blur(x: np.ndarray) -> np.ndarray:
        return np.stack(
            [correlate(x[..., c], window, mode="constant") for c in range(x.shape[-1])], -1
        )

    c1, c2 = 0.01**2, 0.03**2
    mu_p, mu_t = blur(pred), blur(target)
    var_p = blur(pred * pred) - mu_p**2
    var_t = blur(target * target) - mu_t**2
    cov = blur(pred * target) - mu_p * mu_t
    return ((2 * mu_p * mu_t + c1) * (2 * cov + c2)) / (
        (mu_p**2 + mu_t**2 + c1) * (var_p + var_t + c2)
    )


def alternate(
    runs: dict, repeat: int, statistic: Callable[[list[float]], float] = statistics.median
) -> dict:
    """`statistic` (default: the median) of each callable's seconds over `repeat` rounds, the
    callables run alternately."""
    times: dict = {name: [] for name in runs}
    for _ in range(repeat):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    return {name: statistic(t) for name, t in times.items()}


def ssim_rows(sizes: list[int], repeat: int) -> list[tuple[str, str, str, str, str]]:
    rows = []
    rng = np.random.default_rng(0)
    for size in sizes:
        target = rng.integers(0, 256, (size, size, 3)).astype(np.float64)
        pred = np.clip(target + rng.normal(0, 12, target.shape), 0, 255).round()
        diff = float(np.abs(ssim_map_2d(pred, target) - iih_ssim_map(pred, target)).max())
        t = alternate(
            {
                "2d": lambda p=pred, g=target: ssim_map_2d(p, g),
                "sep": lambda p=pred, g=target: iih_ssim_map(p, g),
            },
            repeat,
            min,
        )
        rows.append(
            (
                f"SSIM map, {size} px",
                f"{t['2d']:.4f} s/image",
                f"{t['sep']:.4f} s/image",
                f"{t['2d'] / t['sep']:.1f}x",
                f"max |diff| {diff:.1e}",
            )
        )
    return rows


def evaluate_row(root: Path, args: argparse.Namespace, workers: int, work: Path):
    outs = {0: work / "eval0", workers: work / f"eval{workers}"}
    settings = dict(size=args.size, limit=args.limit, device="cpu", progress=False)
    t = alternate(
        {w: lambda w=w: evaluate_model(None, root, outs[w], workers=w, **settings) for w in outs},
        args.repeat,
    )
    pairs = len((outs[0] / "per_image.csv").read_text().splitlines()) - 1
    same = all(
        (outs[0] / name).read_bytes() == (outs[workers] / name).read_bytes()
        for name in ("per_image.csv", "metrics.json")
    )
    return (
        f"evaluate {args.size} px, {pairs} pairs",
        f"{pairs / t[0]:.2f} items/s (0 w.)",
        f"{pairs / t[workers]:.2f} items/s ({workers} w.)",
        f"{t[0] / t[workers]:.1f}x",
        "identical" if same else "DIFFERENT",
    )


def check_row(root: Path, args: argparse.Namespace, workers: int):
    reports: dict[int, list[str]] = {}

    def check(w: int) -> None:
        reports[w] = check_root(root, SPLITS, workers=w)

    t = alternate({1: lambda: check(1), workers: lambda: check(workers)}, args.repeat)
    samples = [s for split in SPLITS for s in list_samples(root, split)]
    files = len(_files_to_inspect(samples))
    return (
        f"check-data, {files} files",
        f"{files / t[1]:.1f} items/s (1 w.)",
        f"{files / t[workers]:.1f} items/s ({workers} w.)",
        f"{t[1] / t[workers]:.1f}x",
        "identical" if reports[1] == reports[workers] else "DIFFERENT",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", type=Path, help="dataset root (default: a mini dataset)")
    parser.add_argument(
        "--mini-size", type=int, default=1024, help="mini image size (default: 1024)"
    )
    parser.add_argument(
        "--ssim-sizes", type=int, nargs="+", default=[256, 1024], help="SSIM image sizes"
    )
    parser.add_argument("--size", type=int, default=256, help="evaluate --size (default: 256)")
    parser.add_argument("--limit", type=int, help="evaluate at most N test pairs per subset")
    parser.add_argument(
        "--workers", type=int, help="N, the worker processes (default: each command's auto)"
    )
    parser.add_argument("--repeat", type=int, default=3, help="timed rounds (median; default 3)")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="tiny sizes, 1 round, 2 workers, a 64 px mini dataset: a smoke test",
    )
    args = parser.parse_args()
    if args.quick:
        args.ssim_sizes, args.size, args.repeat, args.mini_size = [32, 64], 32, 1, 64
        args.workers = args.workers or 2

    import torch

    print(
        f"cores: {os.cpu_count()} on the machine, {usable_cpus()} usable by this process; "
        f"torch intra-op threads {torch.get_num_threads()}; python {sys.version.split()[0]}"
    )
    with tempfile.TemporaryDirectory(prefix="metrics_speed_") as tmp:
        work = Path(tmp)
        root = args.data_root
        if root is None:
            root = work / "mini"
            per_subset = (4, 2) if args.quick else (40, 16)
            start = time.perf_counter()
            build_mini(
                root, size=args.mini_size, train_per_subset=per_subset[0],
                test_per_subset=per_subset[1],
            )  # fmt: skip
            print(
                f"built the mini dataset ({args.mini_size} px, {per_subset[0]} train / "
                f"{per_subset[1]} test pairs per subset) in {time.perf_counter() - start:.1f} s"
            )
        batches = -(-len(list_samples(root, "test")) // 8)
        evaluate_workers = args.workers or auto_workers(batches, torch.device("cpu"))
        check_workers = args.workers or resolve_workers("auto")
        rows = [("", "2-D SSIM / 0-1 workers", "separable / N workers", "speed-up", "result")]
        rows += ssim_rows(args.ssim_sizes, args.repeat)
        rows.append(evaluate_row(root, args, evaluate_workers, work))
        rows.append(check_row(root, args, check_workers))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


if __name__ == "__main__":
    main()
