"""notebooks/table5_user_study.ipynb: the hand-computed example rendered, and no votes at all."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from study_helpers import CHOICES, GROUPS, write_inputs, write_votes

from regionharmony.cli import main as cli_main
from regionharmony.study.build import build_study

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "table5_user_study.ipynb"
EMBEDDED = 'src="data:image/png;base64,'


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("t5")
    group_dir, methods = write_inputs(root / "in", keys=GROUPS)
    build_study(group_dir, methods, root / "study")
    write_votes(root / "votes", root / "study.key.json", CHOICES)
    (root / "votes" / "broken.json").write_text("{")
    (root / "empty").mkdir()
    return root


def render(study: Path, votes: str, name: str) -> tuple[str, nbformat.NotebookNode]:
    out = study / f"{name}.html"
    argv = [str(NOTEBOOK), "--out", str(out), "--cwd", str(ROOT), "--no-input"]
    argv += ["--executed-out", str(out.with_suffix(".ipynb"))]
    argv += ["-r", "votes_dir", str(study / votes), "-r", "key_path", str(study / "study.key.json")]
    argv += ["-r", "model_summary", "", "-p", "n_boot", "300"]
    assert cli_main(["report", *argv]) == 0
    executed = nbformat.read(out.with_suffix(".ipynb"), as_version=4)
    outputs = [o for c in executed.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert not [o for o in outputs if o.get("name") == "stderr"], "warnings in the report"
    return out.read_text(encoding="utf-8"), executed


def test_the_report_shows_the_hand_computed_numbers(study, hermetic_kernel):
    text, _ = render(study, "votes", "with_votes")
    assert "Table V" in text and 'class="rh-provenance"' in text
    # study facts: 3 files accepted, the broken one rejected by name
    assert "broken.json: not a JSON file" in text
    # votes 4 / 1 / 1 of 6: 66.67 %, 16.67 %; ranks; the paper's columns beside
    assert "66.67%" in text and "16.67%" in text and "29.44%" in text and "11.76%" in text
    # Plackett-Luce strengths 0.667 / 0.167, P(full over l1) = 0.80
    assert "0.667" in text and "0.167" in text
    # Fleiss' kappa -1/3, observed 1/3, chance 1/2
    assert "-0.333" in text and "0.500" in text
    assert "No votes yet" not in text
    assert text.count(EMBEDDED) == 2  # the preference bars; the two pairwise matrices


def test_without_votes_the_report_says_so(study, hermetic_kernel):
    text, _ = render(study, "empty", "empty")
    assert "No votes yet: nothing is counted." in text
    assert "29.44%" in text  # the paper's Table V is still shown
    assert "strength per method (not in the paper)" not in text and "Fleiss" not in text
    assert text.count(EMBEDDED) == 1  # the paper's bars only
