"""The parts of `benchmarks/gpu_check.sh` that are Python: the machine's description and the
paper_smoke training (compile, bf16, channels-last, loader workers) killed at its first
checkpoint and resumed. Each writes one JSON file.

    python3 benchmarks/gpu_check.py env --out RESULTS/env.json
    python3 benchmarks/gpu_check.py smoke --data-root DATA --out RESULTS/smoke.json [--cpu]

Runs on a bare GPU machine (torch, numpy, pandas, scikit-image, pyyaml): the training gets the
stand-ins of `benchmarks/standins/` for whichever of dvclive and tqdm is missing.
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import math
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STANDINS = Path(__file__).resolve().parent / "standins"


def write_json(data: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n")
    print(json.dumps(data, indent=2))


def describe() -> dict:
    import torch

    info = {
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "python": platform.python_version(),
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "gpu": None,
    }
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        info.update(
            gpu=props.name,
            gpu_count=torch.cuda.device_count(),
            capability=".".join(map(str, torch.cuda.get_device_capability(0))),
            gpu_memory_gib=round(props.total_memory / 2**30, 1),
            cudnn=torch.backends.cudnn.version(),
        )
    return info


def environment() -> dict[str, str]:
    paths = [str(ROOT / "src")]
    missing = [n for n in ("dvclive", "tqdm") if importlib.util.find_spec(n) is None]
    if missing:
        print(f"stand-ins for {', '.join(missing)}: {STANDINS}", file=sys.stderr)
        paths.append(str(STANDINS))  # after src; the real packages, where present, are found
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths), "PYTHONUNBUFFERED": "1"}


def train_command(data_root: Path, out: Path, cpu: bool, steps: int, every: int) -> list[str]:
    settings = [f"train.max_steps={steps}", f"train.checkpoint_every={every}"]
    if cpu:  # the rehearsal: the CUDA defaults on the CPU, at a CPU's size
        settings += ["train.device=cpu", "train.rehearse_cuda=true", "train.image_size=32"]
        settings += ["train.batch_size=2"]
    command = [sys.executable, "-m", "regionharmony.cli", "train", "--profile", "paper_smoke"]
    command += ["--params", str(ROOT / "params.yaml"), "--data-root", str(data_root)]
    command += ["--out", str(out), "--checkpoint-dir", str(out.parent / "smoke_ckpt")]
    command += ["--no-progress"]
    for item in settings:
        command += ["--set", item]
    return command


def smoke(data_root: Path, work: Path, cpu: bool, steps: int, every: int) -> dict:
    """Train, kill at the first checkpoint, re-run: wall times, whether it resumed, losses."""
    out = work / "smoke_model"
    command = train_command(data_root, out, cpu, steps, every)
    checkpoint = work / "smoke_ckpt" / "last.pt"
    started = time.perf_counter()
    first = subprocess.Popen(command, env=environment(), stderr=subprocess.PIPE, text=True)
    while not checkpoint.exists() and first.poll() is None:
        time.sleep(0.05)
    to_checkpoint = time.perf_counter() - started
    killed = first.poll() is None
    first.kill()
    first_err = first.communicate()[1]
    started = time.perf_counter()
    second = subprocess.run(command, env=environment(), capture_output=True, text=True)
    resume_s = time.perf_counter() - started
    report = {
        "command": " ".join(command[1:]),
        "first_run_to_checkpoint_s": round(to_checkpoint, 1),
        "killed_at_checkpoint": killed,
        "resume_exit": second.returncode,
        "resumed": "resumed from" in second.stderr,
        "resume_run_s": round(resume_s, 1),
        "settings": [line for line in first_err.splitlines() if line.startswith("device ")],
        "compile_fallback": [
            line for line in second.stderr.splitlines() if "compile failed" in line
        ],
    }
    if second.returncode:
        report["stderr_tail"] = (first_err + second.stderr).strip().splitlines()[-12:]
        return report
    tsv = out / "live" / "train" / "plots" / "metrics" / "loss" / "total.tsv"
    with tsv.open(newline="") as handle:
        totals = [float(row["total"]) for row in csv.DictReader(handle, delimiter="\t")]
    summary = json.loads((out / "summary.json").read_text())
    report.update(
        steps=summary["steps"],
        losses_finite=all(math.isfinite(v) for v in totals),
        first_last_total=[totals[0], totals[-1]],
    )
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("part", choices=("env", "smoke"))
    parser.add_argument("--out", type=Path, required=True, help="the JSON file to write")
    parser.add_argument("--data-root", type=Path, help="smoke: an iHarmony4-layout root")
    parser.add_argument("--cpu", action="store_true", help="smoke: the CPU rehearsal")
    parser.add_argument("--steps", type=int, default=40, help="smoke: optimiser steps")
    parser.add_argument("--checkpoint-every", type=int, default=10)
    args = parser.parse_args()
    if args.part == "env":
        write_json(describe(), args.out)
        return
    if args.data_root is None or not (args.data_root / "IHD_train.txt").is_file():
        parser.error(f"--data-root {args.data_root}: no iHarmony4-layout root there")
    work = args.out.parent / "work"
    import shutil

    shutil.rmtree(work, ignore_errors=True)
    report = smoke(args.data_root, work, args.cpu, args.steps, args.checkpoint_every)
    shutil.rmtree(work, ignore_errors=True)
    write_json(report, args.out)
    if report["resume_exit"] or not report["resumed"]:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
