"""The smoke run end to end: `dvc repro` of the whole pipeline with the paper's network, loss
and recipe on a small iHarmony4-layout root (made by make-mini), every stage and variant a few
steps each, as a user runs it first: here `regionharmony switch paper_smoke_cpu`, the CPU form
of `paper_smoke` (32 px crops, two steps, `train.device: cpu`). The code paths are the paper
profile's: the full-size network, step checkpoints, per-epoch validation of the Fig. 8/9
variants, highres evaluation, the user study."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
COPIED = (
    "dvc.yaml",
    "params.yaml",
    ".dvcignore",
    "notebooks",
    "paper_results",
    "user_study",
    "switches",
    "src",
)


def smoke_params(repo: Path) -> None:
    """The CPU smoke switch of docs/paper-run.md ('A smoke run on a CPU')."""
    from regionharmony.cli import main

    assert main(["switch", "paper_smoke_cpu", "--params", str(repo / "params.yaml")]) == 0


def test_the_cpu_smoke_profile_is_paper_smoke_at_cpu_sizes():
    """paper_smoke_cpu differs from paper_smoke only in sizes and the device: the paper's
    network, loss and recipe otherwise."""
    from regionharmony.params import load_params, resolve_config

    params = load_params(ROOT / "params.yaml")
    cpu = resolve_config(params, "paper_smoke_cpu").to_dict()
    gpu = resolve_config(params, "paper_smoke").to_dict()
    assert cpu["model"] == gpu["model"] and cpu["loss"] == gpu["loss"]
    differ = {k for k in cpu["train"] if cpu["train"][k] != gpu["train"][k]}
    sizes = {"image_size", "batch_size", "max_steps", "checkpoint_every", "checkpoint_minutes"}
    assert differ <= {"device", "require_cuda", "num_workers", *sizes}, differ
    assert cpu["train"]["device"] == "cpu" and not cpu["train"]["require_cuda"]


def test_the_cuda_refusal_names_the_cpu_smoke_profile(tmp_path, capsys, monkeypatch):
    import torch

    from regionharmony.cli import main

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    argv = ["train", "--params", str(ROOT / "params.yaml"), "--profile", "paper_smoke"]
    argv += ["--data-root", str(tmp_path), "--out", str(tmp_path / "m"), "--no-progress"]
    assert main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "paper_smoke_cpu" in err[0], err
    assert "device: cpu" in err[0] and "profiles.paper_smoke.train" in err[0]


@pytest.mark.slow
def test_paper_smoke_runs_every_stage(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    for name in COPIED:
        source = ROOT / name
        if source.is_dir():
            ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
            shutil.copytree(source, repo / name, ignore=ignore)
        else:
            shutil.copy2(source, repo / name)
    bin_dir = Path(sys.executable).parent
    path = f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"
    env = {**os.environ, "PYTHONPATH": str(repo / "src"), "PATH": path}

    def run(*command: str) -> None:
        done = subprocess.run(command, cwd=repo, env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    run(str(bin_dir / "dvc"), "init", "--no-scm", "-q")
    run(str(bin_dir / "dvc"), "config", "core.analytics", "false")
    run(str(bin_dir / "regionharmony"), "make-mini", "--out", "data/smoke", "--train-per-subset",
        "4", "--test-per-subset", "2", "--no-progress")  # fmt: skip
    smoke_params(repo)
    run(str(bin_dir / "dvc"), "repro")

    summary = json.loads((repo / "models/full/seed0/summary.json").read_text())
    assert summary["profile"] == "paper_smoke_cpu" and summary["steps"] == 2
    assert round(summary["params_generator"] / 1e6, 2) == 28.37  # the paper's network
    config = json.loads((repo / "models/full/seed0/config.json").read_text())
    assert config["train"]["crop"] == "resized" and config["loss"]["hcl_query"] == "paper"
    curves = repo / "models/fusion_rain/seed0/live/val/plots/metrics/psnr.tsv"
    assert curves.is_file()  # the Fig. 8/9 variants validate
    assert not (repo / "models/l1/seed0/live/val/plots").exists()  # the others do not
    # fusion_style is l1_pixel_sf's run up to its end (a constant lr): copied, not retrained
    shared = repo / "models/l1_pixel_sf/seed0/prefix/fusion_style"
    copied = repo / "models/fusion_style/seed0"
    assert (copied / "model.pt").read_bytes() == (shared / "model.pt").read_bytes()
    assert (copied / "live/val/plots/metrics/psnr.tsv").is_file()
    assert not (repo / "models/hcl_truth_gated").exists()  # the paper switch keeps no study
    for name in ("table2_table3", "table4_highres", "fig8_fig9_fusion_curves", "index"):
        assert (repo / f"reports/{name}.html").stat().st_size > 0
    assert not (repo / "reports/loss_reading.html").exists()
    highres = json.loads((repo / "evaluation/highres/full_128/metrics.json").read_text())
    assert highres["size"] == 128
    assert (repo / "user_study/study/index.html").is_file()
    status = subprocess.run(
        [str(bin_dir / "dvc"), "status"], cwd=repo, env=env, capture_output=True, text=True
    )
    assert "up to date" in status.stdout, status.stdout
