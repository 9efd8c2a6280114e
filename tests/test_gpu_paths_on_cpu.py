"""The CUDA defaults, run on the CPU before any GPU sees them (`train.rehearse_cuda`): the
paper_smoke profile's training compiled, in bf16 autocast, channels-last, with fused AdamW, loader
workers, host syncs every 25 steps and step checkpoints; killed and resumed across a change of
`train.compile`; the same under two gloo ranks; and evaluation, `features` and `harmonize` of the
model it wrote. What stays CUDA-only (NCCL, SyncBatchNorm, pinned memory) is listed in
docs/paper-run.md."""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
# the paper_smoke profile at a CPU's size: the paper's network and loss, 32 px, batch 2
SMOKE = [
    "train.device=cpu",
    "train.rehearse_cuda=true",
    "train.image_size=32",
    "train.batch_size=2",
    "train.max_steps=12",
    "train.checkpoint_every=2",
]


def environment() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT / "src")}


def train_command(root: Path, out: Path, *settings: str, processes: int = 1) -> list[str]:
    command = [sys.executable, "-m", "regionharmony.cli", "train"]
    command += ["--params", str(ROOT / "params.yaml"), "--profile", "paper_smoke"]
    command += ["--data-root", str(root), "--out", str(out), "--no-progress"]
    command += ["--checkpoint-dir", str(out.parent / f"{out.name}_ckpt")]
    command += ["--processes", str(processes)]
    for item in (*SMOKE, *settings):
        command += ["--set", item]
    return command


def kill_at_first_checkpoint(command: list[str], checkpoint: Path) -> str:
    """Start `command`, SIGKILL it once it has written `checkpoint`; its stderr."""
    victim = subprocess.Popen(command, env=environment(), stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 400  # a cold torch.compile of the paper network: ~2 min
    while not checkpoint.exists() and victim.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    alive = victim.poll() is None
    victim.kill()
    _, stderr = victim.communicate(timeout=60)
    assert alive and checkpoint.exists(), stderr[-3000:]
    return stderr


def finish(command: list[str]) -> str:
    done = subprocess.run(command, env=environment(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stderr


def losses(model_dir: Path, term: str = "total") -> list[float]:
    tsv = model_dir / "live" / "train" / "plots" / "metrics" / "loss" / f"{term}.tsv"
    with tsv.open(newline="") as handle:
        return [float(row[term]) for row in csv.DictReader(handle, delimiter="\t")]


def check_model_dir(out: Path) -> None:
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 12 and summary["profile"] == "paper_smoke"
    assert round(summary["params_generator"] / 1e6, 2) == 28.37  # the paper's network
    for term in ("total", "l1", "pixel", "hcl"):
        values = losses(out, term)
        assert len(values) == 12 and all(math.isfinite(v) for v in values), term
    keys = torch.load(out / "model.pt", weights_only=True).keys()
    assert not any("_orig_mod" in k or k.startswith("module.") for k in keys)


@pytest.mark.slow
def test_compiled_bf16_training_resumes_eager_and_back(tiny_root, tmp_path) -> None:
    compiled, eager = tmp_path / "compiled", tmp_path / "eager"
    # compiled (bf16, channels-last, fused AdamW, 2 workers), killed, resumed eager
    stderr = kill_at_first_checkpoint(
        train_command(tiny_root, compiled), tmp_path / "compiled_ckpt" / "last.pt"
    )
    assert "precision bf16 autocast, channels_last True, compile True" in stderr
    resumed = finish(train_command(tiny_root, compiled, "train.compile=never"))
    assert "resumed from" in resumed and "compile False" in resumed
    check_model_dir(compiled)
    # eager, killed, resumed compiled
    kill_at_first_checkpoint(
        train_command(tiny_root, eager, "train.compile=never"), tmp_path / "eager_ckpt" / "last.pt"
    )
    resumed = finish(train_command(tiny_root, eager))
    assert "resumed from" in resumed and "compile True" in resumed
    check_model_dir(eager)
    # the first steps ran the same code on the same batches: close, not equal (compiled
    # kernels round differently)
    assert losses(compiled)[:2] == pytest.approx(losses(eager)[:2], rel=0.05)

    # what the paper run does next with such a model: evaluate, features, harmonize in bf16
    cli = [sys.executable, "-m", "regionharmony.cli"]
    evaluate = [*cli, "evaluate", "--checkpoint", str(compiled), "--data-root", str(tiny_root)]
    evaluate += ["--out", str(tmp_path / "eval"), "--size", "32", "--no-progress"]
    finish(evaluate)
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    overall = metrics["subsets"]["All"]
    assert math.isfinite(overall["mse"]) and overall["n"] > 0
    features = [*cli, "features", "--checkpoint", str(compiled), "--data-root", str(tiny_root)]
    finish([*features, "--out", str(tmp_path / "features.npz"), "--size", "32", "--count", "2"])
    assert np.load(tmp_path / "features.npz").files
    composite = next((tiny_root / "HCOCO" / "composite_images").iterdir())
    image_id, mask_id = composite.stem.split("_")[:2]
    mask = tiny_root / "HCOCO" / "masks" / f"{image_id}_{mask_id}.png"
    out = tmp_path / "harmonized.png"
    harmonize = [*cli, "harmonize", "--checkpoint", str(compiled), str(composite), str(mask)]
    finish([*harmonize, "--out", str(out), "--precision", "bf16", "--device", "cpu"])
    assert Image.open(out).size == Image.open(composite).size


@pytest.mark.slow
def test_two_compiled_bf16_ranks_finish_stop_in_one_line_and_resume(tiny_root, tmp_path) -> None:
    """Two gloo ranks, compiled (forced: "auto" does not compile under DDP with BatchNorm over
    the global batch), bf16, CrossRankBatchNorm: a killed rank stops the run in one line and a
    re-run resumes it to the end."""
    from test_launch import kill_rank_one_at_checkpoint

    out = tmp_path / "ddp"
    command = train_command(tiny_root, out, "train.compile=always", processes=2)
    checkpoint = tmp_path / "ddp_ckpt" / "last.pt"
    kill_rank_one_at_checkpoint(command, checkpoint, environment(), wait_s=400)
    resumed = finish(command)
    assert "resumed from" in resumed and "compile True, 2 rank(s)" in resumed
    check_model_dir(out)
    assert not checkpoint.exists()
