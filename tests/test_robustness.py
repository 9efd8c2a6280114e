"""Issue 11: byte-reproducible model files after a resume, one-line errors for configuration
and checkpoint mistakes that write nothing, all-white masks, `make lab`, CPU threads."""

from __future__ import annotations

import csv
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
from regionharmony.io import atomic_save
from regionharmony.train import Trainer

REPO = Path(__file__).resolve().parents[1]


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


def write_tiny_params(path: Path) -> Path:
    import yaml

    path.write_text(yaml.safe_dump({"profile": "mini", "profiles": {"mini": TINY}}))
    return path


def train_process(
    params: Path, root: Path, out: Path, epochs: int, checkpoints: Path | None = None
) -> subprocess.Popen:
    command = [sys.executable, "-m", "regionharmony.cli", "train", "--params", str(params)]
    command += ["--data-root", str(root), "--out", str(out), "--no-progress"]
    command += ["--checkpoint-dir", str(checkpoints)] if checkpoints else []
    command += ["--set", f"train.epochs={epochs}", "--set", "train.checkpoint_every=2"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO / "src")}
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


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


# -- 2. configuration and checkpoint mistakes: one line, exit 1, nothing written --------------

BAD_PARAMS = {
    "yaml_syntax": (
        "profile: mini\nprofiles:\n  mini:\n    train: {epochs: 3\n    model: {depth: 4}\n",
        [],
        ["line 5, column 10", "YAML syntax error"],
    ),
    "key_typo": (
        "profile: mini\nprofiles:\n  mini:\n    train: {epoch: 3}\n",
        [],
        ["profiles.mini", "unknown parameter train.epoch", "allowed in train:", "epochs"],
    ),
    "wrong_type": (
        "profile: mini\nprofiles:\n  mini:\n    train: {epochs: three}\n",
        [],
        ["profiles.mini", "train.epochs must be an integer, got 'three'"],
    ),
    "float_without_dot": (
        "profile: mini\nprofiles:\n  mini:\n    train: {lr: 1e-3}\n",
        [],
        ["train.lr must be a number", "1.0e-3"],
    ),
    "profiles_not_a_mapping": (
        "profile: mini\nprofiles: [mini]\n",
        [],
        ["profiles must be a mapping"],
    ),
    "unknown_profile": (
        "profile: mini\nprofiles:\n  mini: {}\n",
        ["--profile", "big"],
        ["unknown profile 'big'", "choose one of mini, paper"],
    ),
    "unknown_variant": (
        "profile: mini\nprofiles:\n  mini: {}\n",
        ["--variant", "ful"],
        ["unknown variant 'ful'", "defines none"],
    ),
    "set_typo": (
        "profile: paper\n",
        ["--set", "train.epoch=3"],
        ["--set", "unknown parameter train.epoch", "epochs"],
    ),
    "set_not_yaml": ("profile: paper\n", ["--set", "train.epochs=["], ["--set", "train.epochs"]),
    "value_out_of_range": (
        "profile: paper\n",
        ["--set", "train.epochs=0"],
        ["with --set", "train.epochs must be at least 1, got 0"],
    ),
    "missing_file": (None, [], ["parameters file not found"]),
    "hcl_query_typo": (
        "profile: paper\n",
        ["--set", "loss.hcl_query=papr"],
        ["loss.hcl_query must be one of paper, truth_gated", "got 'papr'"],
    ),
    "patch_source_typo": (
        "profile: paper\n",
        ["--set", "loss.patch_source=pixels"],
        ["loss.patch_source must be one of image, sampling_map", "got 'pixels'"],
    ),
    "image_size_zero": (
        "profile: paper\n",
        ["--set", "train.image_size=0"],
        ["train.image_size must be at least 1, got 0"],
    ),
}


def one_error_line(capsys) -> str:
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), captured.err
    assert "Traceback" not in captured.err
    return lines[0]


@pytest.mark.parametrize("command", ["train", "summary"])
@pytest.mark.parametrize("case", sorted(BAD_PARAMS))
def test_a_configuration_mistake_is_one_line_naming_file_and_key(
    case, command, tiny_root, tmp_path, capsys
):
    text, extra, expected = BAD_PARAMS[case]
    params = tmp_path / "params.yaml"
    if text is not None:
        params.write_text(text)
    argv = [command, "--params", str(params), *extra]
    out = tmp_path / "models" / "m"
    if command == "train":
        argv += ["--data-root", str(tiny_root), "--out", str(out), "--no-progress"]
    before = files_of(tmp_path)
    assert main(argv) == 1
    line = one_error_line(capsys)
    if "--set" not in extra:
        assert str(params) in line
    for part in expected:
        assert part in line, (part, line)
    assert files_of(tmp_path) == before and not out.parent.exists()


def test_train_with_a_bad_data_root_creates_no_model_directory(tmp_path, capsys):
    params = write_tiny_params(tmp_path / "params.yaml")
    out = tmp_path / "models" / "m"
    argv = ["train", "--params", str(params), "--data-root", str(tmp_path / "absent")]
    assert main([*argv, "--out", str(out), "--no-progress"]) == 1
    assert str(tmp_path / "absent") in capsys.readouterr().err
    assert not out.parent.exists()


@pytest.fixture(scope="module")
def model_dir(tiny_root, tmp_path_factory) -> Path:
    """A trained (two steps) tiny model directory."""
    out = tmp_path_factory.mktemp("models") / "tiny"
    cfg = build_config("mini", {**TINY, "train": {**TINY["train"], "max_steps": 2}})
    Trainer(cfg, tiny_root, out, show_progress=False).run()
    return out


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def other_architecture(path: Path) -> None:
    from regionharmony.model.harmonizer import build_model

    atomic_save(build_model(build_config("mini", {"model": {"base_width": 16}})).state_dict(), path)


CHECKPOINT_MISTAKES = {
    "truncated_model": ("model.pt", truncate, "not a usable checkpoint"),
    "other_architecture": ("model.pt", other_architecture, "not a usable checkpoint"),
    "no_config": ("config.json", Path.unlink, "model config not found"),
    "config_not_json": (
        "config.json",
        lambda p: p.write_text("{"),
        "unreadable model config",
    ),
    "config_key_typo": (
        "config.json",
        lambda p: p.write_text(json.dumps({"model": {"widht": 3}})),
        "unknown parameter model.widht",
    ),
}


@pytest.mark.parametrize("case", sorted(CHECKPOINT_MISTAKES))
def test_evaluate_refuses_a_bad_checkpoint_in_one_line(
    case, model_dir, tiny_root, tmp_path, capsys
):
    name, damage, expected = CHECKPOINT_MISTAKES[case]
    broken = tmp_path / "model"
    shutil.copytree(model_dir, broken)
    damage(broken / name)
    evaluation = tmp_path / "evaluations" / "e"
    argv = ["evaluate", "--checkpoint", str(broken), "--data-root", str(tiny_root)]
    assert main([*argv, "--out", str(evaluation), "--size", "32", "--no-progress"]) == 1
    line = one_error_line(capsys)
    assert str(broken / name) in line and expected in line, line
    assert not evaluation.parent.exists()


def test_a_damaged_resumable_checkpoint_is_refused_naming_it(tiny_root, tmp_path, capsys):
    """A truncated last.pt, and one with the run's fingerprint but without its optimiser state
    (once a KeyError), stop `train` with one line that names the file and says to delete it;
    the model directory is left as it was."""
    params = write_tiny_params(tmp_path / "params.yaml")
    out = tmp_path / "models" / "m"
    last = out / "checkpoints" / "last.pt"
    cfg = build_config("mini", params_path=params)
    fingerprint = Trainer(cfg, tiny_root, out, show_progress=False).checkpoints.fingerprint
    argv = ["train", "--params", str(params), "--data-root", str(tiny_root), "--out", str(out)]
    for damage in ("truncated", "incomplete"):
        atomic_save({"fingerprint": fingerprint, "step": torch.tensor(2)}, last)
        if damage == "truncated":
            truncate(last)
        before = files_of(out)
        assert main([*argv, "--no-progress"]) == 1
        line = one_error_line(capsys)
        assert str(last) in line and "delete it" in line, line
        assert damage != "incomplete" or "missing generator, head, last, logs, optimizer" in line
        assert files_of(out) == before


# -- 3. a mask without background is a warning, and metrics.json says how it was scored --------


def whiten_first_test_mask(root: Path) -> tuple[list[str], Path]:
    """Make the mask of the first HCOCO test composite cover the whole image; the names of the
    test composites that use it, and the mask."""
    names = (root / "HCOCO" / "HCOCO_test.txt").read_text().split()
    prefix = names[0].rsplit("_", 1)[0]  # <image id>_<mask id>
    mask = root / "HCOCO" / "masks" / f"{prefix}.png"
    size = Image.open(mask).size
    Image.new("RGB", size, (255, 255, 255)).save(mask)
    using = [n.removesuffix(".jpg") for n in names if n.rsplit("_", 1)[0] == prefix]
    return using, mask


def test_check_data_warns_about_a_mask_without_background(root, tmp_path, capsys):
    from regionharmony.data.check import check_root

    _, mask = whiten_first_test_mask(root)
    warnings: list[str] = []
    assert check_root(root, warnings=warnings) == []
    assert len(warnings) == 1 and str(mask) in warnings[0] and "whole image" in warnings[0]

    report = tmp_path / "report.txt"
    argv = ["check-data", "--data-root", str(root), "--report", str(report), "--no-progress"]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert ": OK" in captured.out
    assert captured.err.count("warning: ") == 1 and str(mask) in captured.err
    assert "warning: " in report.read_text() and str(mask) in report.read_text()


def test_evaluate_warns_once_and_records_masks_without_background(
    model_dir, tiny_root, tmp_path, caplog
):
    data = tmp_path / "data"
    shutil.copytree(tiny_root, data)
    names, _ = whiten_first_test_mask(data)
    listed = [f"HCOCO/{n}" for n in names]
    for label, source in (("model", ["--checkpoint", str(model_dir)]), ("composite", None)):
        caplog.clear()
        out = tmp_path / label
        argv = ["evaluate", *(source or ["--baseline", "composite"]), "--data-root", str(data)]
        assert main([*argv, "--out", str(out), "--size", "32", "--no-progress"]) == 0
        warned = [r for r in caplog.records if r.levelname == "WARNING"]
        assert len(warned) == 1 and all(n in warned[0].getMessage() for n in listed)
        metrics = json.loads((out / "metrics.json").read_text())
        note = metrics["no_background"]
        assert note["images"] == listed and note["count"] == len(listed)
        assert "fMSE equals MSE" in note["scoring"]
        assert ("style fusion" in note["scoring"]) == (label == "model")
        rows = list(csv.DictReader((out / "per_image.csv").open()))
        for row in rows:
            whole = row["subset"] == "HCOCO" and row["name"] in names
            assert (float(row["fg_ratio"]) == 1.0) == whole
            assert not whole or float(row["fmse"]) == pytest.approx(float(row["mse"]))
        assert all(np.isfinite(float(r[k])) for r in rows for k in ("mse", "psnr", "fssim"))

    caplog.clear()
    clean = tmp_path / "clean"
    argv = ["evaluate", "--baseline", "composite", "--data-root", str(tiny_root), "--size", "32"]
    assert main([*argv, "--out", str(clean), "--no-progress"]) == 0
    assert "no_background" not in json.loads((clean / "metrics.json").read_text())
    assert not [r for r in caplog.records if r.levelname == "WARNING"]


# -- 4. make lab: works as root, takes extra flags ----------------------------------------------


def lab_command(args: str) -> list[str]:
    """The jupyter command line `make lab ARGS=...` would run (a dry run, `make -n`)."""
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    dry = subprocess.run(
        ["make", "-n", "lab", f"ARGS={args}"], cwd=REPO, capture_output=True, text=True, check=True
    )
    lines = [line for line in dry.stdout.splitlines() if "jupyter lab" in line]
    assert len(lines) == 1, dry.stdout
    return shlex.split(lines[0])


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_make_lab_passes_args_and_allows_root():
    command = lab_command("--port 8899 --no-browser")
    assert command[:3] == [".venv/bin/jupyter", "lab", "notebooks/"]
    assert command[-2:] == ["8899", "--no-browser"] and "--port" in command
    assert ("--allow-root" in command) == (os.geteuid() == 0)


def test_make_lab_command_starts_jupyter_lab(tmp_path):
    """The dry run's command, with this environment's jupyter, answers on /lab (as root too)."""
    jupyter = Path(sys.executable).parent / "jupyter"
    if not jupyter.exists():
        pytest.skip("jupyterlab is not installed (the [lab] extra)")
    port, token = free_port(), "robustness-test"
    command = lab_command(f"--no-browser --port {port} --IdentityProvider.token={token}")
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime")}
    log = (tmp_path / "lab.log").open("w")
    lab = subprocess.Popen([str(jupyter), *command[1:]], cwd=REPO, env=env, stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 60
        status = None
        while status is None and lab.poll() is None and time.monotonic() < deadline:
            try:
                url = f"http://127.0.0.1:{port}/lab?token={token}"
                with urllib.request.urlopen(url, timeout=5) as response:
                    status = response.status
            except OSError:
                time.sleep(0.2)
        assert status == 200, (tmp_path / "lab.log").read_text()[-2000:]
    finally:
        lab.terminate()
        try:
            lab.wait(timeout=20)
        except subprocess.TimeoutExpired:
            lab.kill()
            lab.wait()
        log.close()


# -- 5. CPU threads: passive OpenMP waiting and half the cores unless the user chose -----------


@pytest.mark.parametrize(
    ("environ", "cpus", "expected_threads", "expected_policy"),
    [
        ({}, 2, "1", "PASSIVE"),
        ({}, 16, "8", "PASSIVE"),
        ({"REGIONHARMONY_THREADS": "auto"}, 1, "1", "PASSIVE"),
        ({"OMP_NUM_THREADS": "3"}, 16, "3", "PASSIVE"),  # the user's own setting wins
        ({"OMP_WAIT_POLICY": "ACTIVE"}, 4, "2", "ACTIVE"),
        ({"REGIONHARMONY_THREADS": "6", "OMP_NUM_THREADS": "2"}, 2, "6", "PASSIVE"),
        ({"REGIONHARMONY_THREADS": "library"}, 2, None, None),
    ],
)
def test_cpu_thread_defaults(monkeypatch, environ, cpus, expected_threads, expected_policy):
    from regionharmony import cpu_threads

    monkeypatch.setattr(cpu_threads, "usable_cpus", lambda: cpus)
    env = dict(environ)
    cpu_threads.configure_cpu_threads(env)
    assert env.get("OMP_NUM_THREADS") == expected_threads
    assert env.get("OMP_WAIT_POLICY") == expected_policy


def test_a_bad_thread_knob_warns_and_uses_auto(monkeypatch):
    from regionharmony import cpu_threads

    monkeypatch.setattr(cpu_threads, "usable_cpus", lambda: 4)
    env = {"REGIONHARMONY_THREADS": "many"}
    with pytest.warns(UserWarning, match="REGIONHARMONY_THREADS='many'"):
        cpu_threads.configure_cpu_threads(env)
    assert env["OMP_NUM_THREADS"] == "2"


def test_importing_the_package_sets_torch_threads_before_torch_starts():
    """In a fresh process without OMP_* variables, torch (imported after the package) runs
    with the package's thread count, and the variables reach child processes."""
    script = (
        "import os, regionharmony, torch; from regionharmony.cpu_threads import *; "
        "print(torch.get_num_threads(), default_threads(usable_cpus()), "
        "os.environ['OMP_WAIT_POLICY'])"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMP_", "REGIONHARMONY_"))}
    env["PYTHONPATH"] = str(REPO / "src")
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
    )
    threads, expected, policy = done.stdout.split()
    assert threads == expected and policy == "PASSIVE"


# -- a trainer never outlives its parent, and never shares a checkpoint directory ---------------


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
