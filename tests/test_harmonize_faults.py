"""`regionharmony harmonize` under faults: symlink loops, a killed run's temporaries, an output
folder that cannot be written."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from harmonize_helpers import make_pair, save_random_model, single_image_args, write_pair

from regionharmony.cli import main as cli_main
from regionharmony.errors import HarmonizeError
from regionharmony.inference import harmonize as harmonize_module
from regionharmony.inference import user_images
from regionharmony.inference.engine import load_engine
from regionharmony.inference.harmonize import harmonize, main


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_random_model(tmp_path_factory.mktemp("model"))


def symlink_loop(path: Path) -> Path:
    """`ln -s NAME NAME`: a link to itself."""
    path.symlink_to(path.name)
    return path


def dead_pid() -> int:
    """The PID of a process that has exited."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def folder_args(model_dir: Path, src: Path, out: Path) -> list[str]:
    return [
        "--checkpoint",
        str(model_dir),
        "--input-dir",
        str(src),
        "--out-dir",
        str(out),
        "--no-progress",
        "--device",
        "cpu",
        "--precision",
        "fp32",
    ]


def files_under(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


# -- symlink loops --------------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["composite", "mask", "out"])
def test_symlink_loop_is_a_one_line_error_naming_it(tmp_path, model_dir, capsys, which):
    comp_path, mask_path = write_pair(tmp_path, "a")
    paths = {"composite": comp_path, "mask": mask_path, "out": tmp_path / "o.png"}
    paths[which] = symlink_loop(tmp_path / f"loop_{which}.png")
    before = files_under(tmp_path)
    args = [str(paths["composite"]), str(paths["mask"]), "--out", str(paths["out"])]
    assert cli_main(["harmonize", "--checkpoint", str(model_dir), *args]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err, err
    assert str(paths[which]) in err and "symlink loop" in err
    assert files_under(tmp_path) == before  # nothing written
    assert paths[which].is_symlink()  # the loop itself is left alone


def test_symlink_loop_through_the_api_names_it(tmp_path, model_dir):
    engine = load_engine(model_dir, device="cpu", precision="fp32")
    composite, mask = make_pair(30, 40)
    loop = symlink_loop(tmp_path / "loop.jpg")
    for comp, m in ((loop, mask), (composite, loop), (composite, loop / "inside.png")):
        with pytest.raises(HarmonizeError, match="symlink loop") as info:
            harmonize(comp, m, engine)
        assert str(loop) in str(info.value)


def test_folder_mode_symlink_loops(tmp_path, model_dir, capsys):
    src = tmp_path / "in"
    write_pair(src, "good", 30, 40)
    write_pair(src, "looped", 30, 40, seed=2)
    out = tmp_path / "out"
    out.mkdir()
    symlink_loop(out / "looped.png")  # one result path is a loop: that pair fails alone
    assert main(folder_args(model_dir, src, out)) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and str(out / "looped.png") in err and "symlink loop" in err
    assert (out / "good.png").is_file() and (out / "looped.png").is_symlink()
    # the output folder itself a loop: one line, before any image
    loop_dir = symlink_loop(tmp_path / "loop_dir")
    assert main(folder_args(model_dir, src, loop_dir)) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {loop_dir}: symlink loop") and "\n" not in err


# -- a killed run's temporaries ---------------------------------------------------------------


def test_a_later_run_removes_the_temporaries_of_a_killed_run(tmp_path, model_dir, capsys):
    """A folder-mode run SIGKILLed while it writes its second result leaves a truncated
    `.NAME.png.PID.tmp`; the next run removes it and writes every result."""
    src = tmp_path / "in"
    for i in range(3):
        write_pair(src, f"p{i}", 30, 40, seed=i)
    out = tmp_path / "out"
    script = f"""
import os, signal
from regionharmony.inference import png
from regionharmony.inference.harmonize import main
original, calls = png.PngEncoder.write, []
def dying_write(self, handle, image):
    calls.append(handle)
    if len(calls) == 2:  # half a file, then killed
        handle.write(b"\\x89PNG\\r\\n\\x1a\\n truncated")
        handle.flush()
        os.kill(os.getpid(), signal.SIGKILL)
    return original(self, handle, image)
png.PngEncoder.write = dying_write
main({folder_args(model_dir, src, out)!r})
"""
    killed = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    _, stderr = killed.communicate(timeout=300)
    assert killed.returncode == -signal.SIGKILL, stderr
    assert [p.name for p in out.glob(".*.tmp")] == [f".p1.png.{killed.pid}.tmp"]
    # a temporary that a running process is writing, and one that is not ours, stay
    live = out / f".busy.png.{os.getppid()}.tmp"
    live.write_bytes(b"being written")
    other = out / f".notes.txt.{dead_pid()}.tmp"
    other.write_bytes(b"someone else's")
    assert main(folder_args(model_dir, src, out)) == 0
    capsys.readouterr()
    assert sorted(p.name for p in out.glob("*.png")) == ["p0.png", "p1.png", "p2.png"]
    assert sorted(p.name for p in out.glob(".*")) == sorted([live.name, other.name])


def test_single_mode_removes_a_stale_temporary_of_its_output(tmp_path, model_dir):
    comp_path, mask_path = write_pair(tmp_path, "a")
    out = tmp_path / "o.png"
    stale = tmp_path / f".o.png.{dead_pid()}.tmp"
    stale.write_bytes(b"truncated")
    args = single_image_args(model_dir, comp_path, mask_path, out)
    assert main([*args, "--device", "cpu", "--precision", "fp32"]) == 0
    assert out.is_file() and not stale.exists()


def test_stale_temporaries_rule():
    pid = os.getpid()
    assert user_images.pid_running(pid) and not user_images.pid_running(dead_pid())
    match = user_images.TEMP_NAME.match(f".a.b.png.{pid}.tmp")
    assert match and match["name"] == "a.b.png" and match["pid"] == str(pid)
    assert user_images.TEMP_NAME.match(".a.png.tmp") is None


# -- an output folder that cannot be written ----------------------------------------------------


def count_pairs(monkeypatch) -> list:
    calls: list = []
    original = harmonize_module.run_pair
    monkeypatch.setattr(
        harmonize_module, "run_pair", lambda *a, **k: calls.append(a) or original(*a, **k)
    )
    return calls


def test_unwritable_out_dir_fails_once_before_any_image(tmp_path, model_dir, capsys, monkeypatch):
    src = tmp_path / "in"
    for i in range(3):
        write_pair(src, f"p{i}", 30, 40, seed=i)
    calls = count_pairs(monkeypatch)
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    # tests run as root, so chmod 555 would not stop them: a path under a regular file can
    # never be a folder
    assert main(folder_args(model_dir, src, blocker / "out")) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {blocker / 'out'}: cannot write") and "\n" not in err, err
    assert main(folder_args(model_dir, src, blocker)) == 1  # the output folder is a file
    err = capsys.readouterr().err.strip()
    assert err == f"error: {blocker}: --out-dir is not a folder"
    assert calls == []


def test_read_only_out_dir_fails_once_before_any_image(tmp_path, model_dir, capsys, monkeypatch):
    """A read-only folder (what chmod 555 does to a user who is not root): creating a file in
    it fails with EACCES."""
    src = tmp_path / "in"
    for i in range(2):
        write_pair(src, f"p{i}", 30, 40, seed=i)
    out = tmp_path / "out"
    out.mkdir()
    calls = count_pairs(monkeypatch)

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(user_images.tempfile, "mkstemp", refuse)
    assert main(folder_args(model_dir, src, out)) == 1
    err = capsys.readouterr().err.strip()
    assert err == f"error: {out}: cannot write in --out-dir (Permission denied)"
    assert calls == [] and list(out.iterdir()) == []


def test_single_mode_into_an_unwritable_folder(tmp_path, model_dir, capsys, monkeypatch):
    comp_path, mask_path = write_pair(tmp_path, "a")
    calls = count_pairs(monkeypatch)
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    args = ["--checkpoint", str(model_dir), str(comp_path), str(mask_path), "--out"]
    assert main([*args, str(blocker / "o.png")]) == 1
    err = capsys.readouterr().err.strip()
    assert err == f"error: {blocker}: the folder of --out is not a folder"
    assert main([*args, str(blocker / "sub" / "o.png")]) == 1  # under a file, however deep
    err = capsys.readouterr().err.strip()
    assert err == f"error: {blocker}: the folder of --out is not a folder"
    assert calls == [] and blocker.read_text() == "not a folder"
    # a folder that does not exist yet is not created by the check (a bad input leaves nothing)
    user_images.check_output_folder(tmp_path / "new" / "deeper", "--out", create=False)
    assert not (tmp_path / "new").exists()


def test_writable_out_dir_check_leaves_nothing(tmp_path, model_dir):
    out = tmp_path / "new" / "out"
    user_images.check_output_folder(out, "--out-dir")
    assert out.is_dir() and list(out.iterdir()) == []


# -- --precision auto and reproducible bytes ----------------------------------------------------


def test_precision_help_says_what_auto_does():
    import argparse

    parser = argparse.ArgumentParser()
    harmonize_module.add_arguments(parser)
    text = " ".join(parser.format_help().split())
    assert "auto (default): bf16 where the hardware has native bf16" in text
    assert "AVX512-BF16" in text and "else fp32" in text and "pass fp32" in text
