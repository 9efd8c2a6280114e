"""Ctrl-C and a full disk in the middle of a command: one line saying what was kept, exit 130
(Ctrl-C) or 1 (a write refused), nothing half-written, and a re-run that finishes (a training
resumes from its last checkpoint)."""

from __future__ import annotations

import errno
import signal
import time
from pathlib import Path

from cli_helpers import REPO, files_of, one_error_line, train_process, write_tiny_params

import regionharmony.io
from regionharmony.cli import main
from regionharmony.evaluation import evaluate as evaluate_module
from regionharmony.report import render


def interrupted_line(capsys) -> str:
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("interrupted: "), captured.err
    return lines[0]


def test_ctrl_c_in_train_names_the_checkpoint_and_a_rerun_resumes(tiny_root, tmp_path):
    """A real SIGINT to a training process, after its first checkpoint."""
    params = write_tiny_params(tmp_path / "params.yaml")
    out = tmp_path / "m"
    process = train_process(params, tiny_root, out, epochs=40)
    checkpoint = out / "checkpoints" / "last.pt"
    deadline = time.monotonic() + 120
    while not checkpoint.is_file() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert checkpoint.is_file(), process.stderr.read().decode()
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    lines = stderr.decode().strip().splitlines()
    assert process.returncode == 130, stderr.decode()
    assert lines == [
        f"interrupted: the last checkpoint is {checkpoint}; run the same command again to "
        "resume from it"
    ]
    assert checkpoint.is_file() and not (out / "model.pt").exists()
    again = train_process(params, tiny_root, out, epochs=40)
    _, stderr = again.communicate(timeout=300)
    assert again.returncode == 0, stderr.decode()
    assert "resumed from" in stderr.decode() and (out / "model.pt").is_file()


def test_ctrl_c_before_any_checkpoint_says_a_rerun_starts_afresh(
    tiny_root, tmp_path, capsys, monkeypatch
):
    from regionharmony.train import Trainer

    def interrupt(self, batch):
        raise KeyboardInterrupt

    monkeypatch.setattr(Trainer, "train_step", interrupt)
    params = write_tiny_params(tmp_path / "params.yaml")
    out = tmp_path / "models" / "m"
    argv = ["train", "--params", str(params), "--data-root", str(tiny_root), "--out", str(out)]
    assert main([*argv, "--num-seeds", "2", "--jobs", "1", "--no-progress"]) == 130
    assert "no checkpoint was written yet" in interrupted_line(capsys)
    assert not out.exists()  # neither seed's folder nor OUT itself stays behind


class FullDisk:
    """A file object whose writes fail for lack of space after `room` bytes."""

    def __init__(self, path: Path, room: int) -> None:
        self.handle = open(path, "wb")  # noqa: SIM115 (closed by close/__exit__)
        self.room = room

    def write(self, data) -> int:
        if len(data) > self.room:
            raise OSError(errno.ENOSPC, "No space left on device")
        self.room -= len(data)
        return self.handle.write(data)

    def __getattr__(self, name):
        return getattr(self.handle, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.handle.close()


def test_a_full_disk_while_writing_a_checkpoint_is_one_line_and_leaves_nothing(
    tiny_root, tmp_path, capsys, monkeypatch
):
    """torch.save into a file that runs out of space raises torch's own RuntimeError over the
    OSError: the user sees the OSError, naming the checkpoint, and no partial model folder."""
    monkeypatch.setattr(
        regionharmony.io, "open", lambda path, mode: FullDisk(path, 4096), raising=False
    )
    params = write_tiny_params(tmp_path / "params.yaml")
    out = tmp_path / "models" / "m"
    argv = ["train", "--params", str(params), "--data-root", str(tiny_root), "--out", str(out)]
    assert main([*argv, "--num-seeds", "1", "--no-progress"]) == 1
    line = one_error_line(capsys)
    checkpoint = out / "seed0" / "checkpoints" / "last.pt"
    assert line.startswith(f"error: {checkpoint}: No space left on device"), line
    assert not out.exists()


def test_ctrl_c_in_evaluate_leaves_nothing_and_a_rerun_finishes(
    tiny_root, tmp_path, capsys, monkeypatch
):
    calls = []
    original = evaluate_module.score_batch

    def interrupt_second(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    monkeypatch.setattr(evaluate_module, "score_batch", interrupt_second)
    out = tmp_path / "ev"
    argv = ["evaluate", "--data-root", str(tiny_root), "--baseline", "composite", "--size", "32"]
    argv += ["--out", str(out), "--no-progress", "--workers", "0", "--batch-size", "2"]
    before = files_of(tmp_path)
    assert main(argv) == 130
    assert "nothing was left half-written" in interrupted_line(capsys)
    assert files_of(tmp_path) == before and sorted(tmp_path.iterdir()) == []
    monkeypatch.setattr(evaluate_module, "score_batch", original)
    assert main(argv) == 0
    assert (out / "metrics.json").is_file() and (out / "per_image.csv").is_file()


def test_ctrl_c_while_a_report_renders_leaves_nothing(tmp_path, capsys, monkeypatch):
    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(render, "execute", interrupt)
    out = tmp_path / "reports" / "table.html"
    notebook = REPO / "notebooks" / "ablation.ipynb"
    assert main(["report", str(notebook), "--out", str(out)]) == 130
    interrupted_line(capsys)
    assert not out.exists() and list(tmp_path.rglob("*")) in ([], [out.parent])
