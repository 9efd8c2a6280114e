"""`train --processes N` (params.yaml `launch.processes`): N gloo ranks through torchrun give
what one process gives, a killed rank stops the run with one line, and a re-run resumes."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from regionharmony.errors import ConfigError
from regionharmony.train.launch import resolve_processes, without_option

ROOT = Path(__file__).resolve().parents[1]
TINY = {
    "model": {"base_width": 8, "depth": 4, "blocks": 1},  # BatchNorm: the mini profile's norm
    "loss": {"num_patches": 16},
    "train": {"batch_size": 4, "image_size": 32, "load_size": 40, "checkpoint_every": 2},
}


def params_file(tmp_path: Path) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump({"profile": "mini", "profiles": {"mini": TINY}}))
    return path


def train_command(params: Path, root: Path, out: Path, processes: int, *extra: str) -> list[str]:
    command = [sys.executable, "-m", "regionharmony.cli", "train", "--params", str(params)]
    command += ["--data-root", str(root), "--out", str(out), "--no-progress"]
    command += ["--checkpoint-dir", str(out.parent / f"{out.name}_ckpt")]
    return [*command, "--processes", str(processes), *extra]


def environment() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT / "src")}


def losses(model_dir: Path, term: str) -> list[float]:
    tsv = model_dir / "live" / "train" / "plots" / "metrics" / "loss" / f"{term}.tsv"
    with tsv.open(newline="") as handle:
        return [float(row[term]) for row in csv.DictReader(handle, delimiter="\t")]


def test_resolve_processes() -> None:
    assert resolve_processes("1", "auto") == 1 and resolve_processes("4", "cpu") == 4
    assert resolve_processes("auto", "cpu") == 1
    with pytest.raises(ConfigError, match="launch.processes"):
        resolve_processes("two", "auto")
    with pytest.raises(ConfigError, match="launch.processes"):
        resolve_processes("0", "auto")
    argv = ["train", "--processes", "2", "--out", "m", "--processes=3"]
    assert without_option(argv, "--processes") == ["train", "--out", "m"]


def test_dvc_training_stages_take_the_launch_parameter() -> None:
    stage = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]["train"]["do"]
    assert "--processes ${launch.processes}" in " ".join(stage["cmd"].split())
    assert "launch" in stage["params"]
    assert "processes" in yaml.safe_load((ROOT / "params.yaml").read_text())["launch"]


def test_two_ranks_train_what_one_process_trains(tiny_root, tmp_path) -> None:
    """A few steps of the mini profile (BatchNorm over the global batch through
    CrossRankBatchNorm): each step's loss terms, the mean over both ranks, equal one process's
    to 1e-4. Longer runs drift apart as any change of summation order makes them (README)."""
    params = params_file(tmp_path)
    runs = {}
    for processes in (1, 2):
        out = tmp_path / f"p{processes}"
        command = train_command(params, tiny_root, out, processes, "--set", "train.max_steps=4")
        result = subprocess.run(
            command, env=environment(), capture_output=True, text=True, timeout=300
        )
        assert result.returncode == 0, result.stderr[-3000:]
        runs[processes] = out
    for term in ("total", "l1", "pixel", "hcl"):
        one, two = losses(runs[1], term), losses(runs[2], term)
        assert len(one) == len(two) == 4
        assert two == pytest.approx(one, rel=1e-4), term

    # rank 0 alone writes the model directory: the same files, the same configuration
    def files(d: Path) -> list[str]:
        return sorted(str(p.relative_to(d)) for p in d.rglob("*") if p.is_file())

    assert files(runs[2]) == files(runs[1])
    assert (runs[2] / "config.json").read_text() == (runs[1] / "config.json").read_text()


def rank_pids(parent: int) -> dict[str, int]:
    """LOCAL_RANK -> pid of the torchrun workers that `parent` started."""
    ranks = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            if ppid != parent:
                continue
            environ = (stat.parent / "environ").read_bytes().split(b"\0")
        except (OSError, ValueError, IndexError):
            continue
        for entry in environ:
            if entry.startswith(b"LOCAL_RANK="):
                ranks[entry.split(b"=", 1)[1].decode()] = int(stat.parent.name)
    return ranks


def kill_rank_one_at_checkpoint(
    command: list[str], checkpoint: Path, env: dict[str, str], wait_s: float = 180
) -> None:
    """Start a 2-rank `command`, SIGKILL rank 1 once `checkpoint` exists: the run must stop
    (torchrun stops rank 0: no hang) with one line naming the rank."""
    victim = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + wait_s
    while not checkpoint.exists() and victim.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    ranks = rank_pids(victim.pid)
    assert checkpoint.exists() and "1" in ranks, victim.communicate()[1][-3000:]
    os.kill(ranks["1"], signal.SIGKILL)
    _, stderr = victim.communicate(timeout=120)
    assert victim.returncode == 1
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("error: rank 1 of 2 stopped (killed by SIGKILL)"), stderr[-3000:]


def test_a_killed_rank_stops_the_run_in_one_line_and_a_rerun_resumes(tiny_root, tmp_path) -> None:
    params = params_file(tmp_path)
    out = tmp_path / "model"
    command = train_command(params, tiny_root, out, 2, "--set", "train.epochs=12")
    checkpoint = tmp_path / "model_ckpt" / "last.pt"
    kill_rank_one_at_checkpoint(command, checkpoint, environment())
    assert not (out / "model.pt").exists()

    resumed = subprocess.run(
        command, env=environment(), capture_output=True, text=True, timeout=300
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resumed from" in resumed.stderr
    assert (out / "model.pt").exists() and not checkpoint.exists()
