"""CPU threads: passive OpenMP waiting and half the cores unless the user chose, set before
torch starts."""

from __future__ import annotations

import os
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
