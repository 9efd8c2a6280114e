"""Which CPU kernel settings make an embedded-default training give the same model.pt bytes
whatever the CPU's vector width: each setting trained once per ISA cap, side by side.

    python benchmarks/cpu_bytes.py [--data-root ROOT] [--epochs 3]

One machine has one CPU kind, so caps stand in for other CPUs: ATen's kernels capped at AVX2 or
at no vector ISA (`ATEN_CPU_CAPABILITY`), oneDNN's at AVX2 (`ONEDNN_MAX_CPU_ISA`), MKL's at AVX2
or SSE4.2 (`MKL_ENABLE_INSTRUCTIONS`), glibc's libm without its AVX2/FMA variants
(`GLIBC_TUNABLES`), and 2 threads instead of 1 (`REGIONHARMONY_THREADS`). A setting S
makes the bytes CPU-independent only if model.pt is the same under every cap with S on.
Settings: today's defaults; oneDNN (and NNPACK) off (`torch.backends.mkldnn.enabled = False`:
convolutions through ATen's im2col + MKL sgemm); MKL's conditional numerical reproducibility
(`MKL_CBWR`, COMPATIBLE or AVX2); oneDNN off with either; the portable path with ATen's scalar
kernels or MKL's AVX2 branch instead; the package's switch REGIONHARMONY_KERNELS=portable
(`regionharmony.cpu_threads`). Each row: the model's sha256 prefix, the training's wall time
(process start included) and its ratio to the first row's. `--epochs 15` on the default root is
60 steps, as many as a mini training.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHILD = """
import sys
import regionharmony  # the thread policy before torch
import torch
torch.backends.mkldnn.enabled = {mkldnn}
torch.backends.nnpack.enabled = {mkldnn}
from regionharmony.cli import main
raise SystemExit(main(sys.argv[1:]))
"""
CAPS = {
    "native": {},
    "ATen avx2": {"ATEN_CPU_CAPABILITY": "avx2"},
    "ATen default": {"ATEN_CPU_CAPABILITY": "default"},
    "oneDNN avx2": {"ONEDNN_MAX_CPU_ISA": "AVX2"},
    "MKL avx2": {"MKL_ENABLE_INSTRUCTIONS": "AVX2"},
    "MKL sse4_2": {"MKL_ENABLE_INSTRUCTIONS": "SSE4_2"},
    "2 threads": {"REGIONHARMONY_THREADS": "2"},
    "glibc no AVX2/FMA": {"GLIBC_TUNABLES": "glibc.cpu.hwcaps=-AVX2,-FMA,-AVX512F"},
}
SETTINGS = {
    "today": (True, {}),
    "oneDNN off": (False, {}),
    "MKL_CBWR=COMPATIBLE": (True, {"MKL_CBWR": "COMPATIBLE"}),
    "oneDNN off + MKL_CBWR": (False, {"MKL_CBWR": "COMPATIBLE"}),
    "oneDNN off + MKL_CBWR=AVX2": (False, {"MKL_CBWR": "AVX2"}),
    # the portable path's alternatives, by hand: ATen's scalar kernels (cross-vendor, slower);
    # MKL's AVX2 branch (faster; Intel documents its reproducibility for Intel CPUs only)
    "portable, ATen scalar": (
        False,
        {"REGIONHARMONY_THREADS": "1", "ATEN_CPU_CAPABILITY": "default", "MKL_CBWR": "COMPATIBLE"},
    ),
    "portable, MKL_CBWR=AVX2": (
        False,
        {"REGIONHARMONY_THREADS": "1", "ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "AVX2"},
    ),
    # the package's switch: ATen's AVX2 kernels forced, MKL_CBWR=COMPATIBLE, one thread, oneDNN
    # and NNPACK off (ATen caps do not apply to it: it forces its own)
    "REGIONHARMONY_KERNELS=portable": (True, {"REGIONHARMONY_KERNELS": "portable"}),
}


def train(
    root: Path, out: Path, mkldnn: bool, env: dict[str, str], epochs: int
) -> tuple[str, float]:
    argv = ["train", "--params", str(ROOT / "params.yaml"), "--variant", "full"]
    argv += ["--data-root", str(root), "--out", str(out), "--no-progress"]
    argv += ["--set", f"train.epochs={epochs}"]
    environment = {**os.environ, "PYTHONPATH": str(ROOT / "src"), **env}
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", CHILD.format(mkldnn=mkldnn), *argv],
        check=False,
        env=environment,
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - started
    if done.returncode:
        raise SystemExit(done.stderr[-2000:])
    return hashlib.sha256((out / "model.pt").read_bytes()).hexdigest()[:12], wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", type=Path, help="default: a small embedded root, made here")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    parser.add_argument("--caps", nargs="+", default=list(CAPS), choices=list(CAPS))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = args.data_root
        if root is None:
            root = Path(tmp) / "mini"
            from regionharmony.data.mini import build_mini

            build_mini(root, seed=0, size=64, train_per_subset=8, test_per_subset=2)
        print(f"{'setting':<32}{'cap':<19}{'model.pt':<14}{'wall s':>8}{'x today':>9}")
        base = None
        verdicts = []
        for name in args.settings:
            mkldnn, env = SETTINGS[name]
            digests = set()
            for cap in args.caps:
                out = Path(tmp) / f"{len(verdicts)}_{len(digests)}_{cap.replace(' ', '_')}"
                digest, wall = train(root, out, mkldnn, {**env, **CAPS[cap]}, args.epochs)
                base = base or wall
                digests.add(digest)
                print(f"{name:<32}{cap:<19}{digest:<14}{wall:>8.1f}{wall / base:>9.2f}", flush=True)
            same = "identical" if len(digests) == 1 else f"{len(digests)} different"
            verdicts.append(f"{name}: model.pt {same} across {len(args.caps)} caps")
        print("\n".join(verdicts))


if __name__ == "__main__":
    main()
