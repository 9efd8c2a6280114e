"""What sharing the CPU costs a training run, per thread / OpenMP setting (issue 11.5).

For each setting, one short `regionharmony train` runs alone, then the same run with a competitor
on the CPU at the same time (another identical training, or a busy single-threaded Python loop);
the training loop's own time ("trained to step N in X s") is read from each run. The ratio
contended / alone is what sharing costs: about 2 when two equal jobs share the cores fairly.

    python benchmarks/cpu_sharing.py --data-root /tmp/rmini --repeat 2 > sharing.json

Settings are environment variables set before the process starts (so before libgomp reads
them); all but the package default pass REGIONHARMONY_THREADS=library, the raw library
defaults. Runs go back to back, so that background load on a shared machine affects every
setting alike; repeat to see the noise.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# name -> environment; the raw library defaults unless REGIONHARMONY_THREADS is named
SETTINGS: dict[str, dict[str, str]] = {
    "unset (torch: 1 thread per core, libgomp default spin)": {},
    "OMP_WAIT_POLICY=PASSIVE": {"OMP_WAIT_POLICY": "PASSIVE"},
    "GOMP_SPINCOUNT=10000": {"GOMP_SPINCOUNT": "10000"},
    "OMP_NUM_THREADS=1": {"OMP_NUM_THREADS": "1"},
    "package default (REGIONHARMONY_THREADS=auto)": {"REGIONHARMONY_THREADS": "auto"},
}
THREAD_VARS = ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "MKL_NUM_THREADS")
BUSY_LOOP = [sys.executable, "-c", "while True: pass"]
COMPETITORS = ("training", "busy-loop")


def environment(setting: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in (*THREAD_VARS, "REGIONHARMONY_THREADS")}
    return {**env, "REGIONHARMONY_THREADS": "library", **setting}


def train_command(data_root: Path, out: Path, params: Path, epochs: int) -> list[str]:
    return [
        *(sys.executable, "-m", "regionharmony.cli", "train", "--params", str(params)),
        *("--variant", "full", "--data-root", str(data_root), "--out", str(out)),
        *("--set", f"train.epochs={epochs}", "--no-progress"),
    ]


def loop_seconds(process: subprocess.Popen) -> float:
    _, err = process.communicate()
    found = re.search(r"trained to step \d+ in ([\d.]+) s", err)
    if process.returncode != 0 or not found:
        raise RuntimeError(f"training failed ({process.returncode}):\n{err[-2000:]}")
    return float(found.group(1))


def start(command: list[str], env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )


def measure(args: argparse.Namespace, setting: dict[str, str], work: Path) -> dict[str, float]:
    env = environment(setting)

    def command(name: str) -> list[str]:
        shutil.rmtree(work / name, ignore_errors=True)
        return train_command(args.data_root, work / name, args.params, args.epochs)

    alone = loop_seconds(start(command("alone"), env))
    row = {"alone_s": alone}
    if "training" in args.competitors:
        pair = [start(command(f"pair{i}"), env) for i in range(2)]
        two_trainings = max(loop_seconds(p) for p in pair)
        row |= {"two_trainings_s": two_trainings, "two_trainings_ratio": two_trainings / alone}
    if "busy-loop" in args.competitors:
        busy = subprocess.Popen(BUSY_LOOP, stdout=subprocess.DEVNULL)
        try:
            with_busy_loop = loop_seconds(start(command("busy"), env))
        finally:
            busy.kill()
            busy.wait()
        row |= {"with_busy_loop_s": with_busy_loop, "with_busy_loop_ratio": with_busy_loop / alone}
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", type=Path, required=True)
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--only", nargs="+", help="names of SETTINGS to run (default: all)")
    parser.add_argument(
        "--competitors",
        nargs="+",
        choices=COMPETITORS,
        default=list(COMPETITORS),
        help="what shares the CPU with the training (default: each in turn)",
    )
    args = parser.parse_args()
    chosen = {k: v for k, v in SETTINGS.items() if not args.only or k in args.only}
    results: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(args.repeat):
            for name, setting in chosen.items():
                began = time.time()
                row = {"setting": name, "round": round_, **measure(args, setting, Path(tmp))}
                row["wall_s"] = round(time.time() - began, 1)
                results.append(row)
                print(json.dumps(row), file=sys.stderr, flush=True)
    print(json.dumps({"cpus": os.cpu_count(), "results": results}, indent=2))


if __name__ == "__main__":
    main()
