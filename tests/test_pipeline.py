"""The DVC pipeline as DVC users use it: `dvc exp run -S` edits, exact report dependencies,
metrics that git (and so every commit and experiment) holds, declared plots."""

from __future__ import annotations

import difflib
import subprocess
import sys
from pathlib import Path

import networkx as nx
import pytest
from dvc.repo import Repo
from dvc.utils.hydra import apply_overrides

from regionharmony.io import EVALUATION_CODE, TRAINING_CODE
from regionharmony.params import load_params

ROOT = Path(__file__).resolve().parents[1]
PARAMS = load_params(ROOT / "params.yaml")
MINI_EPOCHS = PARAMS["profiles"]["mini"]["train"]["epochs"]


def changed_lines(before: str, after: str) -> list[str]:
    diff = difflib.unified_diff(before.splitlines(), after.splitlines(), n=0, lineterm="")
    return [line for line in diff if line[:1] in "+-" and not line.startswith(("+++", "---"))]


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        # the forms README documents: a key that exists, and `+` for one a variant does not set
        (
            f"profiles.mini.train.epochs={MINI_EPOCHS + 2}",
            [f"-      epochs: {MINI_EPOCHS}", f"+      epochs: {MINI_EPOCHS + 2}"],
        ),
        ("seeds=2", None),
        (
            "+variants.fusion_rain.train.lr=0.002",
            [
                "-    train: {budget: 0.5, validate: true}",
                "+    train: {budget: 0.5, validate: true, lr: 0.002}",
            ],
        ),
        ("variants.k512.loss.num_patches=384", None),
    ],
)
def test_dvc_exp_run_set_changes_only_the_value_it_sets(tmp_path, override, expected):
    """`dvc exp run -S` rewrites params.yaml through DVC's own YAML dumper: the file's layout
    survives, so an experiment's diff is the one value."""
    params = tmp_path / "params.yaml"
    before = (ROOT / "params.yaml").read_text()
    params.write_text(before)
    apply_overrides(str(params), [override])
    changed = changed_lines(before, params.read_text())
    assert len(changed) == 2, changed
    if expected:
        assert [line.rstrip() for line in changed] == expected


def test_a_key_a_variant_does_not_set_needs_the_plus_form(tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text((ROOT / "params.yaml").read_text())
    with pytest.raises(Exception, match="Invalid `--set-param` value"):
        apply_overrides(str(params), ["variants.fusion_rain.train.lr=0.002"])


@pytest.fixture(scope="module")
def graph() -> nx.DiGraph:
    return Repo(str(ROOT)).index.graph


def downstream_of_param(graph: nx.DiGraph, key: str) -> set[str]:
    """Every stage that re-runs when params.yaml `key` changes."""
    direct = {
        stage
        for stage in graph.nodes
        for dep in stage.deps
        if key in (getattr(dep, "params", None) or [])
    }
    reached = set(direct)
    for stage in direct:
        reached |= nx.ancestors(graph, stage)  # edges point from a stage to what it reads
    return {stage.addressing for stage in reached}


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        (
            "variants.fusion_rain",
            {"train@fusion_rain", "evaluate@fusion_rain", "report_fusion_curves", "report_index"},
        ),
        (
            "prefix_variants.fusion_style",
            {
                "train_prefix@fusion_style",
                "evaluate_prefix@fusion_style",
                "report_fusion_curves",
                "report_index",
            },
        ),
        (  # a study is not in the index's table (the index links it): the paper switch drops it
            "studies.hcl_truth_gated",
            {
                "train_study@hcl_truth_gated",
                "evaluate_study@hcl_truth_gated",
                "report_loss_reading@hcl_truth_gated",
            },
        ),
        ("variants.k512", {"train@k512", "evaluate@k512", "report_table7", "report_index"}),
        (
            "variants.l1",
            {
                "train@l1",
                "evaluate@l1",
                "report_table6",
                "report_figure_grids",
                "user_study",
                "report_table5",
                "report_index",
            },
        ),
    ],
)
def test_a_variant_re_runs_its_own_stages_and_the_reports_that_show_it(graph, key, expected):
    assert downstream_of_param(graph, key) == expected


def test_full_reaches_the_tables_that_show_it_but_no_ablation_of_other_rows(graph):
    reached = downstream_of_param(graph, "variants.full")
    assert {"report_table2_table3", "report_table4", "report_table6", "report_table7"} <= reached
    assert "train_prefix@fusion_style" not in reached  # Fig. 8/9's style fusion: no L_HCL
    # its run is Table VI row 3's first half (paper profile)
    assert "train_prefix@fusion_style" in downstream_of_param(graph, "variants.l1_pixel_sf")
    other = [n for n in reached if n.startswith(("train@", "evaluate@")) and "full" not in n]
    assert not other


def test_metrics_are_tracked_by_git_and_plots_are_declared():
    names = [*PARAMS["variants"], *PARAMS["prefix_variants"], *PARAMS["studies"]]
    for name in [*names, *PARAMS["reports"]["baselines"]]:
        ignored = subprocess.run(
            ["git", "check-ignore", "-q", f"metrics/{name}.json"], cwd=ROOT, check=False
        )
        assert ignored.returncode == 1, f"metrics/{name}.json is gitignored"
    repo = Repo(str(ROOT))
    plots = repo.index._plots  # the top-level `plots:` of dvc.yaml
    titles = {name for entry in plots.values() for item in entry for name in item}
    assert {"fig8_validation_psnr", "fig9_validation_mse", "per_image_fmse"} <= titles


def test_dvc_exp_run_leaves_data_dvc_and_the_params_layout_alone(tmp_path):
    """A real `dvc exp run -S` in a small repository holding this project's data.dvc and
    params.yaml: only the value set changes; data.dvc (iHarmony4, absent) is not rewritten."""
    dvc = str(Path(sys.executable).with_name("dvc"))

    def run(*argv: str) -> None:
        subprocess.run(argv, cwd=tmp_path, check=True, capture_output=True, text=True)

    for name in ("data.dvc", "params.yaml"):
        (tmp_path / name).write_text((ROOT / name).read_text())
    (tmp_path / "dvc.yaml").write_text(
        "stages:\n  echo:\n    cmd: echo ${variants.fusion_rain} > out.txt\n"
        "    params: [variants.fusion_rain]\n    outs: [out.txt]\n"
    )
    run("git", "init", "-q")
    run("git", "config", "user.email", "t@example.com")
    run("git", "config", "user.name", "t")
    run(dvc, "init", "-q")
    run("git", "add", "-A")
    run("git", "commit", "-qm", "start")
    before = (tmp_path / "params.yaml").read_text()
    run(dvc, "exp", "run", "-S", "+variants.fusion_rain.train.lr=0.002")
    assert (tmp_path / "data.dvc").read_text() == (ROOT / "data.dvc").read_text()
    assert len(changed_lines(before, (tmp_path / "params.yaml").read_text())) == 2


@pytest.mark.parametrize(
    ("prefix", "digest"),
    [
        ("train@", "training"),
        ("train_", "training"),
        ("evaluate@", "evaluation"),
        ("evaluate_", "evaluation"),
    ],
)
def test_trainings_and_evaluations_depend_on_the_code_they_run(graph, prefix, digest):
    """The train@ stages depend on io.TRAINING_CODE (which the resume fingerprint digests too),
    the evaluations on io.EVALUATION_CODE, through the digest files of the code_digest stage; a
    report helper, the user study or harmonize is in neither, so editing them re-runs only the
    stages that use them."""
    for stage in graph.nodes:
        if getattr(stage, "addressing", "").startswith(prefix):
            paths = {Path(dep.def_path).as_posix() for dep in stage.deps}
            assert f"code/{digest}.digest" in paths, stage.addressing
            assert not any(p.startswith("src/") for p in paths), stage.addressing
    tooling = ("report", "study", "inference", "evaluation/features.py", "summary.py")
    for part in TRAINING_CODE:
        assert not part.startswith(tooling)


def test_the_code_digest_stage_writes_the_digests_of_the_code_lists(graph, tmp_path):
    """code_digest depends on the whole package and writes what the trainings depend on: the
    source digest of io.TRAINING_CODE and of io.EVALUATION_CODE, as committed in code/."""
    from regionharmony.cli import main
    from regionharmony.io import source_digest

    stage = next(s for s in graph.nodes if getattr(s, "addressing", "") == "code_digest")
    assert {Path(dep.def_path).as_posix() for dep in stage.deps} == {"src/regionharmony"}
    assert main(["code-digest", "--out", str(tmp_path)]) == 0
    for name, parts in (("training", TRAINING_CODE), ("evaluation", EVALUATION_CODE)):
        written = (tmp_path / f"{name}.digest").read_text()
        assert written.splitlines()[0] == source_digest(parts)
        assert written == (ROOT / "code" / f"{name}.digest").read_text(), name


def test_the_resume_fingerprint_ignores_tooling_edits(monkeypatch, tmp_path):
    """A checkpoint survives an edit to a report helper, not one to the loss."""
    import shutil

    from regionharmony import io
    from regionharmony.config import Config
    from regionharmony.train.checkpoint import run_fingerprint

    package = tmp_path / "regionharmony"
    shutil.copytree(io.PACKAGE_DIR, package, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(io, "PACKAGE_DIR", package)
    before = run_fingerprint(Config(), ["a"])
    with (package / "report" / "notebook.py").open("a") as handle:
        handle.write("\n# an edit\n")
    assert run_fingerprint(Config(), ["a"]) == before
    with (package / "loss" / "hcl.py").open("a") as handle:
        handle.write("\n# an edit\n")
    assert run_fingerprint(Config(), ["a"]) != before


def test_the_lock_holds_exactly_the_stages_of_dvc_yaml(graph):
    """dvc.lock keeps entries of stages that dvc.yaml no longer defines unless someone removes
    them; the committed lock must describe this pipeline, no more and no less."""
    import yaml

    locked = set(yaml.safe_load((ROOT / "dvc.lock").read_text())["stages"])
    defined = {stage.addressing for stage in graph.nodes if getattr(stage, "cmd", None) is not None}
    assert sorted(locked - defined) == [] and sorted(defined - locked) == []


def paper_switched(text: str) -> str:
    """params.yaml after `regionharmony switch paper`."""
    from regionharmony.switch import switched

    return switched(text, ROOT / "params.yaml", "paper")


def test_the_paper_switch_leaves_a_pipeline_dvc_can_read(tmp_path):
    """Every value dvc.yaml interpolates outside the paper's block survives its replacement;
    the paper pipeline trains no study and shares fusion_style."""
    dvc = str(Path(sys.executable).with_name("dvc"))
    (tmp_path / "params.yaml").write_text(paper_switched((ROOT / "params.yaml").read_text()))
    (tmp_path / "dvc.yaml").write_text((ROOT / "dvc.yaml").read_text())
    subprocess.run([dvc, "init", "--no-scm", "-q"], cwd=tmp_path, check=True)
    listed = subprocess.run(
        [dvc, "stage", "list"], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert listed.returncode == 0, listed.stderr
    stages = {line.split()[0] for line in listed.stdout.splitlines() if line.strip()}
    assert "train_prefix@fusion_style" in stages and "train@full" in stages
    assert not any("study@" in s or s.startswith("report_loss_reading") for s in stages)
    assert load_params(tmp_path / "params.yaml")["profile"] == "paper"


def documented_exp_show_recipes() -> list[str]:
    """Every `dvc exp show --drop ...` command line of README.md and docs/*.md."""
    import re

    found = []
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        found += re.findall(r"^\s*(dvc exp show --drop .+?)\s*$", page.read_text(), re.M)
    return found


def test_the_documented_exp_show_recipe_shows_the_metrics():
    """Run in the repository itself (its committed metrics/*.json): each recipe the docs give
    prints the mse of `full` and of the composite, not just the Experiment column."""
    import csv
    import json
    import shlex

    recipes = documented_exp_show_recipes()
    assert recipes, "README.md or docs/ should show a `dvc exp show --drop` recipe"
    dvc = Path(sys.executable).parent / "dvc"
    for recipe in recipes:
        command = [str(dvc), *shlex.split(recipe)[1:], "--no-pager", "--csv"]
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=180)
        assert done.returncode == 0, done.stderr
        header, *rows = list(csv.reader(done.stdout.splitlines()))
        assert header[0] == "Experiment" and len(header) >= 3, header
        for name in ("full", "composite"):
            mse = json.loads((ROOT / "metrics" / f"{name}.json").read_text())["mse"]
            column = header.index(f"metrics/{name}.json:mse")
            shown = [float(row[column]) for row in rows if row[column]]
            assert any(abs(value - mse) <= 1e-3 * mse for value in shown), (name, mse, rows)
