"""CPU threads: passive OpenMP waiting and half the cores unless the user chose, set before
torch starts."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


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


def clean_environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMP_", "REGIONHARMONY_"))}
    env.pop("ATEN_CPU_CAPABILITY", None)
    env.pop("MKL_CBWR", None)
    env["PYTHONPATH"] = str(REPO / "src")
    return env


def test_the_kernels_option_puts_the_command_and_its_children_on_the_portable_path(tmp_path):
    """`regionharmony --kernels portable COMMAND` chooses the path before torch loads: torch
    then runs ATen's scalar kernels on one thread without oneDNN, and a child process started
    by the command inherits the path."""
    script = (
        "import os, subprocess, sys; from regionharmony.cli import main; "
        f"assert main(['--kernels', 'portable', 'code-digest', '--out', {str(tmp_path)!r}]) == 0; "
        "import torch, regionharmony.runtime as runtime; "
        "print(runtime.kernel_facts()['kernels'], torch.get_num_threads(), "
        "torch.backends.cpu.get_cpu_capability(), torch.backends.mkldnn.enabled, "
        "os.environ['MKL_CBWR'], subprocess.run([sys.executable, '-c', "
        "'import regionharmony.runtime as r; print(r.PORTABLE)'], capture_output=True, "
        "text=True).stdout.strip())"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        env=clean_environment(),
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.split() == ["portable", "1", "AVX2", "False", "COMPATIBLE", "True"]


def test_the_kernels_option_refuses_a_path_torch_did_not_load_with():
    """In a process whose torch is already loaded (native here), asking for the portable path
    is one line naming the environment variable, not a silent native run."""
    import torch  # noqa: F401  (loaded, as in any pytest process)

    from regionharmony.cli import main, take_kernels
    from regionharmony.errors import ConfigError

    if os.environ.get("REGIONHARMONY_KERNELS") == "portable":
        pytest.skip("this test process itself runs the portable path")
    with pytest.raises(ConfigError, match="REGIONHARMONY_KERNELS=portable before Python"):
        take_kernels(["--kernels", "portable", "train"])
    assert take_kernels(["--kernels=native", "summary"]) == ["summary"]
    assert main(["--kernels", "sideways", "summary"]) == 1


def test_every_torch_stage_runs_on_the_switch_blocks_kernel_path():
    """dvc.yaml: each stage that runs the network (train, evaluate, features, harmonize) passes
    params.yaml's cpu_kernels as `--kernels` and depends on it; every switch names its path,
    the embedded default the portable one."""
    import yaml

    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    torch_stage = re.compile(
        r"regionharmony (?:--kernels \S+ )?(train|evaluate|features|harmonize) "
    )
    seen = 0
    for name, stage in stages.items():
        body = stage.get("do", stage)
        commands = torch_stage.findall(body["cmd"])
        if not commands:
            continue
        seen += 1
        runs = body["cmd"].count("regionharmony --kernels ${cpu_kernels} ")
        assert runs == len(commands), f"{name}: a command without --kernels ${{cpu_kernels}}"
        assert "cpu_kernels" in body["params"], f"{name}: cpu_kernels is not among its params"
    assert seen >= 10
    paths = {
        f.stem: yaml.safe_load(f.read_text())["cpu_kernels"] for f in REPO.glob("switches/*.yaml")
    }
    assert paths.pop("mini") == "portable" and set(paths.values()) == {"native"}
    assert yaml.safe_load((REPO / "params.yaml").read_text())["cpu_kernels"] == "portable"
