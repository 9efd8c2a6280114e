"""Wall time and peak memory of `regionharmony harmonize` on one large composite, beside the code
before the speed work and beside the floor (decoding and encoding the image alone).

    OMP_NUM_THREADS=2 python benchmarks/harmonize_large.py --random-profile paper \
        --width 4992 --height 3328 [--engine torch onnxruntime] [--repeat 3] [--baseline REV]

Builds a WIDTH x HEIGHT composite (an embedded-dataset test photograph, upscaled bicubic, and
its mask, nearest) in a temporary folder unless --composite/--mask are given, then runs the
command in a child process (the way a user runs it: interpreter start-up, imports, model
loading, decoding, encoding and writing included) and reads the child's wall time, its peak
resident set (VmHWM of /proc/self/status, reported by the child: wait4's ru_maxrss would count
this process's memory at the fork) and, on a GPU, its peak GPU memory.

Rows, each the fastest of --repeat runs, the rows interleaved so that a busy machine slows all
alike:

* ``baseline``: the package as it was at git revision --baseline (default `BASELINE_REV`, the
  commit before the speed work), extracted with ``git archive`` and run with the same
  interpreter; ``--baseline none`` skips it;
* ``torch`` / ``onnxruntime``: today's command with ``--engine`` (onnxruntime runs an ONNX file
  exported from the checkpoint first, outside the timing);
* ``floor``: a child that only decodes the composite and writes it as the command writes its
  result (`user_images.load_composite` + `save_image`).

Each row prints its ratio to the floor, and whether its pixels equal the baseline's (torch,
same precision) or how far they are from torch's (onnxruntime, fp32).

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
import tarfile
import tempfile
import time
import types
from io import BytesIO
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
BASELINE_REV = "1fb10bd"  # main just before the harmonize speed work (issue C)
PEAK = """
def peak_rss_mib():  # this process's own high-water mark (wait4's includes the parent's)
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
"""

CHILD = """
import sys, time, types
started = time.perf_counter()
{peak}
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
torch = sys.modules.get("torch")
if torch is not None and torch.cuda.is_available():
    print("cuda_peak_mib", torch.cuda.max_memory_allocated() / 2**20, file=sys.stderr)
print("inner_s", time.perf_counter() - started, file=sys.stderr)
print("peak_rss_mib", peak_rss_mib(), file=sys.stderr)
raise SystemExit(code)
"""

FLOOR = """
import sys, time
started = time.perf_counter()
{peak}
sys.path.insert(0, {src!r})
from pathlib import Path
from regionharmony.inference.user_images import load_composite, save_image
save_image(load_composite(sys.argv[1]), Path(sys.argv[2]))
print("inner_s", time.perf_counter() - started, file=sys.stderr)
print("peak_rss_mib", peak_rss_mib(), file=sys.stderr)
"""


def random_model(profile: str, folder: Path) -> Path:
    import torch

    sys.path.insert(0, str(SRC))
    try:
        import yaml  # noqa: F401
    except ImportError:  # regionharmony.params imports it; build_config does not use it
        sys.modules["yaml"] = types.ModuleType("yaml")
    from regionharmony.model.harmonizer import build_model
    from regionharmony.params import build_config

    torch.manual_seed(0)
    cfg = build_config(profile)
    folder.mkdir(parents=True, exist_ok=True)
    model = build_model(cfg)
    torch.nn.init.normal_(model.to_rgb.weight, std=0.01)  # not the identity map
    torch.save(model.state_dict(), folder / "model.pt")
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


def baseline_source(rev: str, folder: Path) -> Path | None:
    """src/ of git revision `rev`, extracted under `folder`; None (said) when git cannot."""
    try:
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", "--format=tar", rev, "src"],
            capture_output=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError) as err:
        print(f"note: no baseline: git archive {rev} failed ({err})", file=sys.stderr)
        return None
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(folder, filter="data")
    return folder / "src"


def timed(script: str, args: list[str], src: Path) -> dict:
    """Run `script` in a child with `src` first on its path: its wall time (start-up
    included), peak resident set (its own report) and exit status."""
    started = time.perf_counter()
    env = {**os.environ, "PYTHONPATH": str(src)}
    child = subprocess.Popen(
        [sys.executable, "-c", script, *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    err = child.stderr.read().decode()  # the child's few lines; EOF when it exits
    _, status, _ = os.wait4(child.pid, 0)
    wall = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    report = {"exit": child.returncode, "wall_s": round(wall, 3)}
    for line in err.splitlines():
        key, _, value = line.partition(" ")
        if key in ("cuda_peak_mib", "inner_s", "peak_rss_mib"):
            report[key] = round(float(value), 2)
    if child.returncode:
        report["stderr"] = err.strip().splitlines()[-3:]
    return report


def export_onnx(checkpoint: Path, folder: Path) -> Path:
    sys.path.insert(0, str(SRC))
    from regionharmony.inference.onnx_export import export_onnx as export

    out = folder / "model.onnx"
    export(checkpoint, out)
    return out


def command_args(args, checkpoint: Path, out: Path, engine: str) -> list[str]:
    argv = ["--checkpoint", str(checkpoint), str(args.composite), str(args.mask)]
    argv += ["--out", str(out), "--strategy", args.strategy, "--device", args.device]
    if engine != "baseline":
        argv += ["--engine", engine]
    # onnxruntime computes in fp32; the others take --precision
    argv += ["--precision", "fp32" if engine == "onnxruntime" else args.precision]
    return argv


def compare(rows: dict[str, Path]) -> dict[str, str]:
    """Each row's pixels against the baseline's (torch) or torch's (onnxruntime)."""
    pixels = {name: np.asarray(Image.open(path)) for name, path in rows.items() if path.exists()}
    notes = {}
    if "torch" in pixels and "baseline" in pixels:
        same = np.array_equal(pixels["torch"], pixels["baseline"])
        notes["torch"] = "same pixels as baseline" if same else "PIXELS DIFFER from baseline"
    if "onnxruntime" in pixels and "torch" in pixels:
        diff = np.abs(pixels["onnxruntime"].astype(int) - pixels["torch"]).max()
        notes["onnxruntime"] = f"max {diff} levels from torch"
    return notes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path)
    parser.add_argument("--random-profile", choices=("paper", "mini"))
    parser.add_argument("--composite", type=Path)
    parser.add_argument("--mask", type=Path)
    parser.add_argument("--width", type=int, default=4000)
    parser.add_argument("--height", type=int, default=3000)
    parser.add_argument("--strategy", default="color")
    parser.add_argument("--engine", nargs="+", default=["torch"], choices=("torch", "onnxruntime"))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--ext", default=".png", help="output format (default .png)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per row; the fastest counts")
    parser.add_argument("--baseline", default=BASELINE_REV, help="git revision, or none")
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
        scripts: dict[str, tuple[str, list[str], Path]] = {}
        base = None if args.baseline == "none" else baseline_source(args.baseline, tmp / "base")
        if base is not None:
            out = tmp / f"out_baseline{args.ext}"
            argv = command_args(args, checkpoint, out, "baseline")
            scripts["baseline"] = (CHILD.format(src=str(base), peak=PEAK), argv, base)
        for engine in args.engine:
            model = export_onnx(checkpoint, tmp) if engine == "onnxruntime" else checkpoint
            out = tmp / f"out_{engine}{args.ext}"
            argv = command_args(args, model, out, engine)
            scripts[engine] = (CHILD.format(src=str(SRC), peak=PEAK), argv, SRC)
        floor_out = tmp / f"out_floor{args.ext}"
        argv = [str(args.composite), str(floor_out)]
        scripts["floor"] = (FLOOR.format(src=str(SRC), peak=PEAK), argv, SRC)

        best: dict[str, dict] = {}
        for _ in range(max(1, args.repeat)):
            for name, (script, argv, src) in scripts.items():
                report = timed(script, argv, src)
                if name not in best or report["wall_s"] < best[name]["wall_s"]:
                    best[name] = report
        notes = compare({name: tmp / f"out_{name}{args.ext}" for name in scripts})
        size = Image.open(args.composite).size
        floor = best["floor"]["wall_s"]
        for name, report in best.items():
            row = {
                "row": name,
                "checkpoint": str(args.random_profile or checkpoint),
                "image": f"{size[0]}x{size[1]}",
                "strategy": args.strategy,
                "device": args.device,
                **report,
                "x_floor": round(report["wall_s"] / floor, 2),
            }
            if name in notes:
                row["pixels"] = notes[name]
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
