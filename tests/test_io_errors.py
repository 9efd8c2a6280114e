"""A data root that is not there and outputs that cannot be written (the parent is a file, the
disk is full): one line naming the path, exit 1, nothing left behind."""

from __future__ import annotations

import pytest
from cli_helpers import files_of, one_error_line, write_tiny_params

from regionharmony.cli import main


def test_train_with_a_bad_data_root_creates_no_model_directory(tmp_path, capsys):
    params = write_tiny_params(tmp_path / "params.yaml")
    out = tmp_path / "models" / "m"
    argv = ["train", "--params", str(params), "--data-root", str(tmp_path / "absent")]
    assert main([*argv, "--out", str(out), "--no-progress"]) == 1
    assert str(tmp_path / "absent") in capsys.readouterr().err
    assert not out.parent.exists()


def test_train_on_a_full_disk_is_one_line_and_leaves_nothing(
    tiny_root, tmp_path, capsys, monkeypatch
):
    """A write failing for lack of space (here: writing the model directory at the end) is one
    line naming the path; the model folder the run created is gone, the checkpoint folder
    outside it stays for a re-run."""
    import errno

    from regionharmony.train import Trainer

    def full(self):
        raise OSError(errno.ENOSPC, "No space left on device", str(self.out_dir / "model.pt"))

    monkeypatch.setattr(Trainer, "write_model_dir", full)
    params = write_tiny_params(tmp_path / "params.yaml")
    out, checkpoints = tmp_path / "models" / "m", tmp_path / "ckpt"
    argv = ["train", "--params", str(params), "--data-root", str(tiny_root), "--out", str(out)]
    argv += ["--checkpoint-dir", str(checkpoints), "--no-progress"]
    assert main(argv) == 1
    line = one_error_line(capsys)
    assert "No space left on device" in line and str(out / "model.pt") in line
    assert not out.exists()


@pytest.mark.parametrize("fault", ["not_a_folder", "disk_full"])
def test_evaluate_into_an_unwritable_output_is_one_line(
    tiny_root, tmp_path, capsys, monkeypatch, fault
):
    """evaluate whose output cannot be written (its parent is a file; the disk is full): one
    line naming the path, exit 1, nothing left beside it."""
    import errno

    import pandas as pd

    blocker = tmp_path / "blocker"
    blocker.write_text("a file, not a folder")
    out = blocker / "ev" if fault == "not_a_folder" else tmp_path / "ev"
    if fault == "disk_full":

        def full(self, path, **kwargs):
            raise OSError(errno.ENOSPC, "No space left on device", str(path))

        monkeypatch.setattr(pd.DataFrame, "to_csv", full)
    before = files_of(tmp_path)
    argv = ["evaluate", "--data-root", str(tiny_root), "--baseline", "composite", "--size", "32"]
    assert main([*argv, "--out", str(out), "--no-progress", "--workers", "0"]) == 1
    line = one_error_line(capsys)
    assert str(blocker if fault == "not_a_folder" else tmp_path) in line
    assert files_of(tmp_path) == before
