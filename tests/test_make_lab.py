"""`make lab`: takes extra flags, works as root, and its command starts JupyterLab."""

from __future__ import annotations

import os
import shlex
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


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
