"""Project files: one list of dependencies, a CPU-only torch, a working CLI."""

import json
import tomllib
from pathlib import Path

import yaml

from regionharmony.cli import main

ROOT = Path(__file__).resolve().parents[1]


def test_environment_yml_installs_the_project_from_pyproject():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    deps = env["dependencies"]
    pip_sections = [d["pip"] for d in deps if isinstance(d, dict) and "pip" in d]
    assert len(pip_sections) == 1
    # pip installs this project (editable, with extras): pyproject.toml stays the one list
    assert all(line.startswith("-e .") for line in pip_sections[0])
    conda_names = {str(d).split("=")[0] for d in deps if isinstance(d, str)}
    assert conda_names <= {"python", "pip"}, conda_names


def test_torch_is_pinned_to_the_cpu_wheel():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    torch_reqs = [d for d in project["dependencies"] if d.replace(" ", "").startswith("torch")]
    assert torch_reqs == ["torch==2.13.0"]
    everything = project["dependencies"] + sum(project["optional-dependencies"].values(), [])
    assert not any(d.startswith("torchvision") for d in everything)


def test_summary_prints_counts_and_measured_flops(capsys):
    assert main(["summary", "--profile", "mini", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["params_generator"] > 0 and report["params_head"] == 115_200
    assert report["gflops_per_image"] > 0


def test_set_overrides_reach_the_config(capsys):
    main(["summary", "--profile", "mini", "--set", "model.fusion=none", "--json"])
    none = json.loads(capsys.readouterr().out)
    main(["summary", "--profile", "mini", "--json"])
    style = json.loads(capsys.readouterr().out)
    assert none["fusion"] == "none" and style["params_generator"] > none["params_generator"]


def test_unknown_parameter_and_variant_are_refused(tmp_path, capsys):
    assert main(["summary", "--profile", "mini", "--set", "model.widht=3"]) == 1
    assert "unknown parameter model.widht" in capsys.readouterr().err
    params = tmp_path / "params.yaml"
    params.write_text("profile: paper\nvariants:\n  full: {}\n")
    assert main(["summary", "--params", str(params), "--variant", "nope"]) == 1
    assert "unknown variant 'nope'" in capsys.readouterr().err
