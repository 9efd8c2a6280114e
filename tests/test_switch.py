"""`regionharmony switch NAME`: params.yaml's switch block is one of switches/*.yaml, swapped
whole, and every switch leaves a params.yaml that resolves."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from regionharmony.cli import main
from regionharmony.errors import ConfigError
from regionharmony.params import load_params, resolve_config
from regionharmony.switch import available, current_switch, read_switch, switched

ROOT = Path(__file__).resolve().parents[1]
PARAMS = ROOT / "params.yaml"


def copy_params(tmp_path: Path) -> Path:
    shutil.copy2(PARAMS, tmp_path / "params.yaml")
    shutil.copytree(ROOT / "switches", tmp_path / "switches")
    return tmp_path / "params.yaml"


def test_the_committed_block_is_the_mini_switch_as_written():
    assert current_switch(PARAMS) == "mini"
    text = PARAMS.read_text()
    assert switched(text, PARAMS, "mini") == text


@pytest.mark.parametrize("name", ["mini", "paper", "paper_smoke", "paper_smoke_cpu"])
def test_every_switch_resolves_and_switches_back(name, tmp_path):
    params = copy_params(tmp_path)
    before = params.read_text()
    assert main(["switch", name, "--params", str(params)]) == 0
    assert current_switch(params) == name
    loaded = load_params(params)
    assert loaded["profile"] == name and resolve_config(loaded).profile == name
    rest = [
        line
        for line in params.read_text().splitlines()
        if line not in read_switch(params, name).splitlines()
    ]
    assert all(line in before.splitlines() or line.startswith("# switch:") for line in rest)
    assert main(["switch", "mini", "--params", str(params)]) == 0
    assert params.read_text() == before


def test_the_paper_switch_sets_the_papers_evaluation_and_data():
    paper = load_params_text(switched(PARAMS.read_text(), PARAMS, "paper"))
    assert paper["evaluate"]["size"] == 256 and paper["evaluate"]["highres"] == [512, 1024]
    assert paper["data"]["root"] == "data/iHarmony4" and paper["seeds"] == 1
    assert paper["studies"] == {} and paper["user_study"]["groups"] == "data/DIH99/image"
    assert paper["real_composites"]["composites_dir"] == "data/DIH99/image"
    assert paper["realhm_composites"]["composites_dir"] == "data/RealHM"


def load_params_text(text: str) -> dict:
    import yaml

    return yaml.safe_load(text)


def test_an_edited_block_is_refused_unless_forced(tmp_path, capsys):
    params = copy_params(tmp_path)
    params.write_text(params.read_text().replace("seeds: 3 ", "seeds: 2 ", 1))
    edited = params.read_text()
    assert main(["switch", "paper", "--params", str(params)]) == 1
    err = capsys.readouterr().err
    assert "seeds: 3" in err and "--force" in err and len(err.strip().splitlines()) == 1
    assert params.read_text() == edited
    assert main(["switch", "paper", "--params", str(params), "--force"]) == 0
    assert load_params(params)["profile"] == "paper"


def test_an_unknown_switch_names_the_choices(tmp_path):
    params = copy_params(tmp_path)
    with pytest.raises(
        ConfigError, match="choose one of mini, paper, paper_smoke, paper_smoke_cpu"
    ):
        switched(params.read_text(), params, "papr")
    assert available(params) == ["mini", "paper", "paper_smoke", "paper_smoke_cpu"]
