"""notebooks/table5_user_study.ipynb: the hand-computed example rendered, no votes at all, and
hostile strings (file names, choices, groups, participant ids, method names) shown as text only."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pandas as pd
import pytest
from study_helpers import (
    CHOICES,
    GROUPS,
    SPOOF_FILE,
    PageParts,
    hostile_study,
    render_report,
    write_inputs,
    write_votes,
)

from regionharmony.report.notebook import code_html, html_table
from regionharmony.study.build import build_study

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
    out = render_report(study, votes, name)
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


def test_a_missing_votes_folder_is_named_as_missing(study, hermetic_kernel):
    text, _ = render(study, "absent", "absent")
    assert "No votes yet: nothing is counted." in text
    assert f"{study / 'absent'}</code> does not exist" in text


@pytest.fixture(scope="module")
def hostile(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    return hostile_study(tmp_path_factory.mktemp("t5-hostile"))


def test_hostile_strings_are_shown_as_text_never_as_markup(hostile, hermetic_kernel):
    root, strings = hostile
    text, _ = render(root, "votes", "hostile")
    page = PageParts(text)
    assert page.injected() == []
    # only the report template's own scripts: require.js, MathJax and its config, the module
    sources = sorted(a.get("src", a.get("type", "")) for a, _ in page.scripts)
    assert len(sources) == 4 and all(
        s.startswith("https://cdnjs.cloudflare.com/") or s in ("module", "text/x-mathjax-config")
        for s in sources
    ), sources
    # no payload verbatim: in the HTML source each one is escaped (&lt;...)
    for raw in ("<img src=x", "<svg", "<iframe", "<script>alert"):
        assert raw not in text, raw
    # every hostile string is there, as the text a reader sees
    for what, value in strings.items():
        assert value in page.text, what
    # control characters in a file name are shown escaped (its repr), never raw
    assert repr(str(root / "votes" / SPOOF_FILE)) in page.text
    assert "\x1b" not in text and "ok.json" not in text.replace("\\rok.json", "")
    # two participants counted (the markup id among them), five files rejected
    assert "(2 participants, 4 votes" in page.text


def test_html_tables_escape_labels_and_cells():
    hostile = "<img src=x onerror=alert('RHXSS-method')>"
    columns = pd.MultiIndex.from_tuples([(hostile, "votes"), ("measured", hostile)])
    frame = pd.DataFrame(
        [[1, "<script>alert('RHXSS-cell')</script>"], [2, None]],
        index=pd.Index([hostile, "full"], name=hostile),
        columns=columns,
    )
    table = html_table(frame)
    page = PageParts(table + code_html(hostile) + html_table(frame[(hostile, "votes")]))
    assert page.injected() == [] and not page.scripts
    assert {tag for tag, _ in page.tags} <= {
        "div",
        "table",
        "thead",
        "tbody",
        "tr",
        "th",
        "td",
        "code",
    }
    assert page.text.count(hostile) == 8 and "<script>alert('RHXSS-cell')</script>" in page.text
    assert "—" in page.text  # None is a dash
