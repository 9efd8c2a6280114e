"""The portable kernel path (REGIONHARMONY_KERNELS=portable): a few training steps give the
same model.pt bytes under stand-ins for another CPU kind (ISA caps of ATen, MKL, oneDNN and
glibc, another thread count); the native path does not (ATen's scalar kernels against this
CPU's vector ones). The portable path's ATen capability is forced (AVX2), so the stand-ins
vary what it leaves to the machine: MKL's and oneDNN's ISA, glibc's libm variants, threads."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cli_helpers import REPO, write_tiny_params

# every stand-in for another CPU at once (glibc: its AVX2/FMA variants of exp, log, ...)
OTHER_CPU = {
    "MKL_ENABLE_INSTRUCTIONS": "SSE4_2",
    "ONEDNN_MAX_CPU_ISA": "AVX2",
    "GLIBC_TUNABLES": "glibc.cpu.hwcaps=-AVX2,-FMA,-AVX512F",
    "REGIONHARMONY_THREADS": "2",
}
SCALAR_ATEN = {"ATEN_CPU_CAPABILITY": "default"}


def train(params: Path, root: Path, out: Path, env: dict[str, str]) -> tuple[bytes, dict]:
    command = [sys.executable, "-m", "regionharmony.cli", "train", "--params", str(params)]
    command += ["--data-root", str(root), "--out", str(out), "--no-progress"]
    command += ["--set", "train.max_steps=3"]
    clean = {k: v for k, v in os.environ.items() if k not in (*OTHER_CPU, *SCALAR_ATEN, "MKL_CBWR")}
    environment = {**clean, "PYTHONPATH": str(REPO / "src"), **env}
    done = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    summary = json.loads((out / "summary.json").read_text())
    return (out / "model.pt").read_bytes(), summary["kernels"]


@pytest.mark.slow
def test_portable_kernels_give_the_same_bytes_under_another_cpus_stand_ins(tiny_root, tmp_path):
    params = write_tiny_params(tmp_path / "params.yaml")
    portable = {"REGIONHARMONY_KERNELS": "portable"}
    here, facts = train(params, tiny_root, tmp_path / "p1", portable)
    other, other_facts = train(params, tiny_root, tmp_path / "p2", {**portable, **OTHER_CPU})
    assert here == other
    assert facts == other_facts
    assert facts["kernels"] == "portable" and facts["threads"] == 1
    assert facts["cpu_capability"] == ("AVX2" if has_avx2_and_fma() else "DEFAULT")


def has_avx2_and_fma() -> bool:
    cpuinfo = Path("/proc/cpuinfo")
    flags = cpuinfo.read_text().split() if cpuinfo.exists() else []
    return "avx2" in flags and "fma" in flags


@pytest.mark.slow
def test_native_kernels_depend_on_the_cpus_vector_width(tiny_root, tmp_path):
    """Documents why the portable path exists: today's default path rounds differently under
    ATen's scalar kernels than under this CPU's vector ones, as on a CPU of another width."""
    params = write_tiny_params(tmp_path / "params.yaml")
    native, facts = train(params, tiny_root, tmp_path / "n1", {})
    scalar, scalar_facts = train(params, tiny_root, tmp_path / "n2", SCALAR_ATEN)
    assert facts["kernels"] == "native" and scalar_facts["cpu_capability"] == "DEFAULT"
    if facts["cpu_capability"] == "DEFAULT":
        pytest.skip("this CPU runs ATen's scalar kernels natively: nothing to compare")
    assert native != scalar
