"""A resumed training writes the model directory of an uninterrupted one, byte for byte: the
same weights give the same file, and the resumed logs hold every row once."""

from __future__ import annotations

import csv
import os
import shutil
import time
import zipfile
from pathlib import Path

import pytest
import torch
from cli_helpers import TINY, files_of, train_process, write_tiny_params

from regionharmony.io import atomic_save
from regionharmony.params import build_config
from regionharmony.train import Trainer


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
    tiny_root, tmp_path, interrupted_run, die_at_step
):
    """Killed during step `die_at_step + 1` (after the epoch-1 validation for 4, mid-epoch 3
    for 7), then re-run: model.pt, config.json, summary.json and every DVCLive file are byte
    for byte those of an uninterrupted run, and each log row appears exactly once."""
    cfg = build_config("mini", TINY)
    straight = Trainer(cfg, tiny_root, tmp_path / "straight", show_progress=False)
    straight.run()

    interrupted_run(
        lambda: Trainer(cfg, tiny_root, tmp_path / "resumed", show_progress=False), die_at_step
    )
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


@pytest.mark.parametrize("output_deleted", [False, True], ids=["output_kept", "output_deleted"])
def test_a_run_killed_in_another_process_resumes_to_identical_bytes(
    tiny_root, tmp_path, output_deleted
):
    """`regionharmony train` killed with SIGKILL after its first checkpoint, then run again (a
    new process, a new PID): the model directory, train.log and DVCLive files included, equals
    an uninterrupted run's byte for byte. Also when the output folder was deleted in between,
    as `dvc repro` deletes a stage's outputs before re-running it while the checkpoint (outside
    them) survives: the checkpoint carries the logs."""
    params = write_tiny_params(tmp_path / "params.yaml")
    epochs = 8
    straight = train_process(params, tiny_root, tmp_path / "straight", epochs, tmp_path / "c1")
    assert straight.wait(timeout=300) == 0, straight.stderr.read().decode()

    out, checkpoints = tmp_path / "resumed", tmp_path / "c2"
    victim = train_process(params, tiny_root, out, epochs, checkpoints)
    checkpoint = checkpoints / "last.pt"
    deadline = time.monotonic() + 120
    while not checkpoint.exists() and victim.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.3)  # let it log past the checkpoint: those rows must not survive
    victim.kill()
    assert victim.wait(timeout=60) == -9, "the run ended before it could be killed"
    assert checkpoint.exists() and not (out / "model.pt").exists()
    if output_deleted:
        shutil.rmtree(out)
    resumed = train_process(params, tiny_root, out, epochs, checkpoints)
    assert resumed.wait(timeout=300) == 0, resumed.stderr.read().decode()
    assert "resumed from" in resumed.stderr.read().decode()

    expected, got = files_of(tmp_path / "straight"), files_of(out)
    assert sorted(got) == sorted(expected)
    assert got["model.pt"] == expected["model.pt"]
    assert [name for name in expected if got[name] != expected[name]] == []
