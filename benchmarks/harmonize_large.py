"""Wall time and peak memory of `regionharmony harmonize` on one large composite.

    OMP_NUM_THREADS=2 python benchmarks/harmonize_large.py --checkpoint models/full \
        [--random-profile paper] [--width 4000 --height 3000] [--strategy color] [--device cpu]

Builds a WIDTH x HEIGHT composite (an embedded-dataset test photograph, upscaled bicubic, and
its mask, nearest) in a temporary folder unless --composite/--mask are given, then runs the
command in a child process (the way a user runs it, model loading, decoding, encoding and
writing included) and reads the child's wall time and peak resident set (``os.wait4``); on a
GPU, the peak GPU memory comes from the child's own report (REGIONHARMONY_REPORT_CUDA_PEAK).

--random-profile PROFILE saves a random-weight model of that profile (config.json train
image size as the profile's) as the checkpoint instead of a trained one: speed does not depend
on the weights.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path

import numpy as np
from PIL import Image

SRC = Path(__file__).resolve().parents[1] / "src"

CHILD = """
import sys, time, types
started = time.perf_counter()
sys.path.insert(0, {src!r})
for name in ("yaml", "tqdm"):  # a bare torch environment: single-pair mode needs neither
    try:
        __import__(name)
    except ImportError:
        stub = types.ModuleType(name)
        stub.tqdm = lambda iterable=None, **kwargs: iterable
        sys.modules[name] = stub
from regionharmony.inference.harmonize import main
code = main(sys.argv[1:])
import torch
if torch.cuda.is_available():
    print("cuda_peak_mib", torch.cuda.max_memory_allocated() / 2**20, file=sys.stderr)
print("inner_s", time.perf_counter() - started, file=sys.stderr)
raise SystemExit(code)
"""


def random_model(profile: str, folder: Path) -> Path:
    import torch

    sys.path.insert(0, str(SRC))
    try:
        import yaml  # noqa: F401
    except ImportError:  # regionharmony.config imports it; build_config does not use it
        sys.modules["yaml"] = types.ModuleType("yaml")
    from regionharmony.config import build_config
    from regionharmony.model.harmonizer import build_model

    torch.manual_seed(0)
    cfg = build_config(profile)
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(build_model(cfg).state_dict(), folder / "model.pt")
    (folder / "config.json").write_text(json.dumps(cfg.to_dict()))
    return folder


def large_pair(folder: Path, width: int, height: int) -> tuple[Path, Path]:
    """A photograph scaled to width x height with a foreground box of 1/6 of the area,
    brightened: a stand-in composite (speed does not depend on content)."""
    try:
        from skimage import data

        photo = Image.fromarray(data.astronaut())
    except ImportError:  # no scikit-image: a smooth random texture
        rng = np.random.default_rng(0)
        photo = Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))
    composite = np.asarray(photo.resize((width, height), Image.Resampling.BICUBIC)).copy()
    mask = np.zeros((height, width), np.uint8)
    mask[height // 4 : height * 2 // 3, width // 3 : width * 3 // 4] = 255
    fg = mask > 0
    composite[fg] = np.clip(composite[fg].astype(int) * 1.3 + 10, 0, 255).astype(np.uint8)
    comp_path, mask_path = folder / "large.jpg", folder / "large_mask.png"
    Image.fromarray(composite).save(comp_path, quality=95)
    Image.fromarray(mask).save(mask_path)
    return comp_path, mask_path


def run_child(args: list[str]) -> dict:
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    started = time.perf_counter()
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD.format(src=str(SRC)), *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - started
    out, err = child.stdout.read(), child.stderr.read()
    child.returncode = os.waitstatus_to_exitcode(status)
    report = {
        "exit": child.returncode,
        "wall_s": round(wall, 2),
        "peak_rss_mib": round(usage.ru_maxrss / 1024),
    }
    for line in err.splitlines():
        key, _, value = line.partition(" ")
        if key in ("cuda_peak_mib", "inner_s"):
            report[key] = round(float(value), 2)
    if child.returncode:
        report["stderr"] = err.strip().splitlines()[-3:]
    report["stdout"] = out.strip()
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path)
    parser.add_argument("--random-profile", choices=("paper", "mini"))
    parser.add_argument("--composite", type=Path)
    parser.add_argument("--mask", type=Path)
    parser.add_argument("--width", type=int, default=4000)
    parser.add_argument("--height", type=int, default=3000)
    parser.add_argument("--strategy", nargs="+", default=["color"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--ext", default=".png", help="output format (default .png)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        checkpoint = args.checkpoint
        if args.random_profile:
            checkpoint = random_model(args.random_profile, tmp / f"random_{args.random_profile}")
        if checkpoint is None:
            parser.error("give --checkpoint or --random-profile")
        if args.composite is None:
            args.composite, args.mask = large_pair(tmp, args.width, args.height)
        for strategy in args.strategy:
            out = tmp / f"out_{strategy}{args.ext}"
            report = run_child(
                [
                    "--checkpoint",
                    str(checkpoint),
                    str(args.composite),
                    str(args.mask),
                    "--out",
                    str(out),
                    "--strategy",
                    strategy,
                    "--device",
                    args.device,
                    "--precision",
                    args.precision,
                ]
            )
            size = Image.open(args.composite).size
            print(
                json.dumps(
                    {
                        "checkpoint": str(args.random_profile or checkpoint),
                        "image": f"{size[0]}x{size[1]}",
                        "strategy": strategy,
                        "device": args.device,
                        **report,
                    }
                ),
                flush=True,
            )


if __name__ == "__main__":
    main()
