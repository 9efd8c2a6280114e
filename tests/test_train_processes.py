"""A trainer never outlives the process that started it, and never shares a checkpoint
directory with another training."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from cli_helpers import train_process, write_tiny_params

REPO = Path(__file__).resolve().parents[1]


def test_a_trainer_stops_when_its_parent_is_killed(tiny_root, tmp_path):
    """SIGKILL of the process that started `regionharmony train` (dvc, here a stand-in) stops
    the trainer too (Linux parent-death signal): nothing keeps writing into its outputs."""
    params = write_tiny_params(tmp_path / "params.yaml")
    pid_file = tmp_path / "trainer.pid"
    command = [sys.executable, "-m", "regionharmony.cli", "train", "--params", str(params)]
    command += ["--data-root", str(tiny_root), "--out", str(tmp_path / "m"), "--no-progress"]
    command += ["--set", "train.epochs=500"]
    parent_code = (
        "import subprocess, sys, time\n"
        f"p = subprocess.Popen({command!r}, stderr=subprocess.DEVNULL)\n"
        f"open({str(pid_file)!r}, 'w').write(str(p.pid))\n"
        "time.sleep(600)\n"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO / "src")}
    parent = subprocess.Popen([sys.executable, "-c", parent_code], env=env)
    checkpoint = tmp_path / "m" / "checkpoints" / "last.pt"
    deadline = time.monotonic() + 120
    while not checkpoint.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert checkpoint.exists(), "the trainer never checkpointed"
    trainer_pid = int(pid_file.read_text())
    parent.kill()
    parent.wait(timeout=30)
    deadline = time.monotonic() + 30
    while Path(f"/proc/{trainer_pid}").exists() and time.monotonic() < deadline:
        status = Path(f"/proc/{trainer_pid}/stat").read_text().split()[2]
        if status == "Z":  # exited; a zombie until init reaps it
            break
        time.sleep(0.1)
    stat = Path(f"/proc/{trainer_pid}/stat")
    assert not stat.exists() or stat.read_text().split()[2] == "Z", "the trainer runs on"


def test_a_second_trainer_on_the_same_checkpoint_directory_is_refused(tiny_root, tmp_path):
    params = write_tiny_params(tmp_path / "params.yaml")
    first = train_process(params, tiny_root, tmp_path / "a", 500, tmp_path / "shared")
    deadline = time.monotonic() + 120
    while not (tmp_path / "shared" / ".lock").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        second = train_process(params, tiny_root, tmp_path / "b", 500, tmp_path / "shared")
        assert second.wait(timeout=120) == 1
        err = second.stderr.read().decode().strip().splitlines()
        assert len(err) == 1 and "in use by another training" in err[0], err
        assert str(first.pid) in err[0]
    finally:
        first.kill()
        first.wait(timeout=30)


def test_one_thread_seed_runs_share_the_cores_and_wider_runs_divide_them(monkeypatch):
    """`train --num-seeds` on the CPU: one-thread runs up to twice the cores at once (3 seeds
    on 2 cores, no second round), runs of T threads the cores over T, one on a GPU."""
    import torch

    from regionharmony import train
    from regionharmony.params import build_config

    cfg = build_config("mini", {"train": {"device": "cpu"}})
    monkeypatch.setattr(train, "usable_cpus", lambda: 2)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 1)
    assert train.auto_jobs(cfg) == 4
    monkeypatch.setattr(train, "usable_cpus", lambda: 16)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 8)
    assert train.auto_jobs(cfg) == 2
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert train.auto_jobs(build_config("mini", {"train": {"device": "cuda"}})) == 1
