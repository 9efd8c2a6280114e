"""Every script in benchmarks/ runs, in a tiny form, against the current package.

Each `benchmarks/*.py` needs an entry in `CASES`: its smallest real run and a piece of text its
output must contain. Only that the script runs and prints its figures is checked, never timing.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT / "benchmarks"

# script -> (arguments, text the output must contain); {data} and {checkpoint} are filled in
CASES: dict[str, tuple[list[str], str]] = {
    "cpu_sharing.py": (
        ["--data-root", "{data}", "--only", "OMP_NUM_THREADS=1", "--competitors", "busy-loop"],
        '"with_busy_loop_ratio"',
    ),
    "cpu_bytes.py": (
        ["--data-root", "{data}", "--epochs", "1", "--settings", "today", "--caps", "native"],
        "model.pt identical across 1 caps",
    ),
    "data_loading.py": (
        ["--data-root", "{data}", "--rounds", "1", "--train-size", "32", "--load-size", "36"],
        "speed-up",
    ),
    "harmonize_large.py": (
        ["--random-profile", "mini", "--width", "96", "--height", "64"],
        '"exit": 0',
    ),
    "harmonize_strategies.py": (
        ["--checkpoint", "{checkpoint}", "--data-root", "{data}"],
        "color-square",
    ),
    "gpu_check.py": (["env", "--out", "{tmp}/env.json"], '"torch": '),
    "hcl_step.py": (
        ["--batch", "2", "--size", "32", "--warmup", "0", "--repeat", "1"],
        "batched ms",
    ),
    "paper_cost.py": (["--quick"], "== side by side =="),
    "metrics_speed.py": (["--data-root", "{data}", "--quick"], "items/s"),
    "inference.py": (
        ["--profile", "mini", "--sizes", "32", "--variants", "fp32", "fold+cl"]
        + ["--min-time", "0", "--max-reps", "1"],
        "ms/image",
    ),
    "train_throughput.py": (
        ["--profile", "mini", "--batch-size", "2", "--steps", "1", "--warmup", "0"]
        + ["--no-compile"],
        "+ batched L_HCL",
    ),
}


@pytest.fixture(scope="session")
def random_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-weight model directory of the mini profile (model.pt + config.json)."""
    import torch

    from regionharmony.model.harmonizer import build_model
    from regionharmony.params import build_config

    folder = tmp_path_factory.mktemp("random_mini")
    cfg = build_config("mini")
    torch.manual_seed(0)
    torch.save(build_model(cfg).state_dict(), folder / "model.pt")
    (folder / "config.json").write_text(json.dumps(cfg.to_dict()))
    return folder


def test_every_benchmark_has_a_case() -> None:
    assert sorted(p.name for p in BENCHMARKS.glob("*.py")) == sorted(CASES)


@pytest.mark.parametrize("name", sorted(p.name for p in BENCHMARKS.glob("*.py")))
def test_benchmark_runs(name: str, request: pytest.FixtureRequest) -> None:
    if name not in CASES:
        pytest.fail(f"benchmarks/{name} has no smoke test: add it to CASES")
    args, expected = CASES[name]
    fill: dict[str, str] = {}
    if any("{data}" in a for a in args):
        fill["data"] = str(request.getfixturevalue("tiny_root"))
    if any("{checkpoint}" in a for a in args):
        fill["checkpoint"] = str(request.getfixturevalue("random_checkpoint"))
    if any("{tmp}" in a for a in args):
        fill["tmp"] = str(request.getfixturevalue("tmp_path"))
    command = [sys.executable, str(BENCHMARKS / name), *(a.format(**fill) for a in args)]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    assert expected in result.stdout, result.stdout[-3000:]


@pytest.mark.parametrize("name", sorted(p.name for p in BENCHMARKS.glob("*.sh")))
def test_shell_script_names_existing_options(name: str) -> None:
    """A GPU script cannot run here: check its syntax and that every benchmark it calls exists
    and takes every option it passes."""
    script = BENCHMARKS / name
    subprocess.run(["bash", "-n", str(script)], check=True)
    text = script.read_text().replace("\\\n", " ")
    calls = re.findall(r'(?:python3?|"\$PY") (benchmarks/\w+\.py)([^|\n]*)', text)
    assert calls
    for path, args in calls:
        source = (ROOT / path).read_text()
        for option in re.findall(r"(?<!\S)--[\w-]+", args):
            assert f'"{option}"' in source, f"{path} has no option {option}"
