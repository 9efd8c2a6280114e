"""Shared by the tests that run the command line and the trainer on tiny data: the tiny
training profile, a folder's files, the one error line a refused command prints, a truncated
file."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# a network and a run small enough for a few seconds of CPU: 3 epochs, checkpoints, validation
TINY = {
    "model": {"base_width": 8, "depth": 4, "blocks": 1},
    "loss": {"num_patches": 16},
    "train": {
        "batch_size": 4,
        "epochs": 3,
        "checkpoint_every": 3,
        "image_size": 32,
        "load_size": 40,
        "val_limit": 4,
        "validate": True,
    },
}


def files_of(directory: Path) -> dict[str, bytes]:
    """Every file under `directory` by relative path, with its bytes."""
    return {
        str(p.relative_to(directory)): p.read_bytes()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


def write_tiny_params(path: Path) -> Path:
    """A params.yaml whose mini profile is `TINY`."""
    import yaml

    path.write_text(yaml.safe_dump({"profile": "mini", "profiles": {"mini": TINY}}))
    return path


def train_process(
    params: Path, root: Path, out: Path, epochs: int, checkpoints: Path | None = None
) -> subprocess.Popen[bytes]:
    """`regionharmony train` in a process of its own, checkpointing every 2 steps."""
    command = [sys.executable, "-m", "regionharmony.cli", "train", "--params", str(params)]
    command += ["--data-root", str(root), "--out", str(out), "--no-progress"]
    command += ["--checkpoint-dir", str(checkpoints)] if checkpoints else []
    command += ["--set", f"train.epochs={epochs}", "--set", "train.checkpoint_every=2"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO / "src")}
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    """The single `error: ` line a refused command printed on stderr, without a traceback."""
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), captured.err
    assert "Traceback" not in captured.err
    return lines[0]


def truncate(path: Path) -> None:
    """Cut a file to its first half."""
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
