"""Issue 11: byte-reproducible model files after a resume, one-line errors for configuration
and checkpoint mistakes that write nothing, all-white masks, `make lab`, CPU threads."""

from __future__ import annotations

import csv
import io
import json
import os
import shlex
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from regionharmony.cli import main
from regionharmony.config import build_config
from regionharmony.data.mini import build_mini
from regionharmony.io import atomic_save
from regionharmony.train import Trainer

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory) -> Path:
    """The embedded dataset, small: 4 train / 2 test pairs per subset at 64 px."""
    root = tmp_path_factory.mktemp("data") / "mini"
    build_mini(root, seed=0, size=64, train_per_subset=4, test_per_subset=2)
    return root


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
    },
}


def files_of(directory: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(directory)): p.read_bytes()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


# -- 1. the same weights give the same bytes; resumed logs hold every row once ----------------


def test_atomic_save_bytes_depend_only_on_the_content(tmp_path):
    state = {"w": torch.arange(6.0).reshape(2, 3)}
    atomic_save(state, tmp_path / "a" / "model.pt")
    atomic_save(state, tmp_path / "b" / "model.pt")
    first, second = (tmp_path / d / "model.pt" for d in "ab")
    assert first.read_bytes() == second.read_bytes()
    names = zipfile.ZipFile(first).namelist()
    assert names and all(n.startswith("archive/") for n in names), names
    assert str(os.getpid()) not in "".join(names)
    assert torch.equal(torch.load(first, weights_only=True)["w"], state["w"])
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["model.pt"]


def tsv_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


@pytest.mark.parametrize("die_at_step", [4, 7])
def test_a_resumed_run_writes_the_same_model_directory(
    tiny_root, tmp_path, monkeypatch, die_at_step
):
    """Killed during step `die_at_step + 1` (after the epoch-1 validation for 4, mid-epoch 3
    for 7), then re-run: model.pt, config.json, summary.json and every DVCLive file are byte
    for byte those of an uninterrupted run, and each log row appears exactly once."""
    cfg = build_config("mini", TINY)
    straight = Trainer(cfg, tiny_root, tmp_path / "straight", show_progress=False)
    straight.run()

    original = Trainer.train_step

    def dying_step(self, batch):
        if self.step == die_at_step:
            raise KeyboardInterrupt
        return original(self, batch)

    monkeypatch.setattr(Trainer, "train_step", dying_step)
    with pytest.raises(KeyboardInterrupt):
        Trainer(cfg, tiny_root, tmp_path / "resumed", show_progress=False).run()
    monkeypatch.setattr(Trainer, "train_step", original)
    Trainer(cfg, tiny_root, tmp_path / "resumed", show_progress=False).run()

    expected, got = files_of(tmp_path / "straight"), files_of(tmp_path / "resumed")
    assert sorted(got) == sorted(expected)
    differing = [name for name in expected if got[name] != expected[name]]
    assert differing == [], differing

    steps_per_epoch, epochs = straight.steps_per_epoch, TINY["train"]["epochs"]
    val = tmp_path / "resumed" / "live" / "val" / "plots" / "metrics"
    assert {p.name for p in val.glob("*.tsv")} == {
        "mse.tsv",
        "psnr.tsv",
        "fmse.tsv",
        "train_step.tsv",
    }
    for tsv in val.glob("*.tsv"):
        assert [int(r["step"]) for r in tsv_rows(tsv)] == list(range(1, epochs + 1)), tsv.name
    train_steps = [int(r["train_step"]) for r in tsv_rows(val / "train_step.tsv")]
    assert train_steps == [steps_per_epoch * e for e in range(1, epochs + 1)]
    total = tmp_path / "resumed" / "live" / "train" / "plots" / "metrics" / "loss" / "total.tsv"
    assert [int(r["step"]) for r in tsv_rows(total)] == list(range(1, straight.step + 1))


def write_tiny_params(path: Path) -> Path:
    import yaml

    path.write_text(yaml.safe_dump({"profile": "mini", "profiles": {"mini": TINY}}))
    return path


def train_process(params: Path, root: Path, out: Path, epochs: int) -> subprocess.Popen:
    command = [sys.executable, "-m", "regionharmony.cli", "train", "--params", str(params)]
    command += ["--data-root", str(root), "--out", str(out), "--no-progress"]
    command += ["--set", f"train.epochs={epochs}", "--set", "train.checkpoint_every=2"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO / "src")}
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def test_a_run_killed_in_another_process_resumes_to_identical_bytes(tiny_root, tmp_path):
    """`regionharmony train` killed with SIGKILL after its first checkpoint, then run again (a
    new process, a new PID): model.pt and the DVCLive files equal an uninterrupted run's."""
    params = write_tiny_params(tmp_path / "params.yaml")
    epochs = 8
    straight = train_process(params, tiny_root, tmp_path / "straight", epochs)
    assert straight.wait(timeout=300) == 0, straight.stderr.read().decode()

    victim = train_process(params, tiny_root, tmp_path / "resumed", epochs)
    checkpoint = tmp_path / "resumed" / "checkpoints" / "last.pt"
    deadline = time.monotonic() + 120
    while not checkpoint.exists() and victim.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    victim.kill()
    assert victim.wait(timeout=60) == -9, "the run ended before it could be killed"
    assert checkpoint.exists() and not (tmp_path / "resumed" / "model.pt").exists()
    resumed = train_process(params, tiny_root, tmp_path / "resumed", epochs)
    assert resumed.wait(timeout=300) == 0, resumed.stderr.read().decode()

    expected, got = files_of(tmp_path / "straight"), files_of(tmp_path / "resumed")
    assert "resumed from" in got.pop("train.log").decode()
    expected.pop("train.log")
    assert sorted(got) == sorted(expected)
    assert got["model.pt"] == expected["model.pt"]
    assert [name for name in expected if got[name] != expected[name]] == []
