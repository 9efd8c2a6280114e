"""Votes of the user study: validation of votes files, and the tally against hand computation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from study_helpers import CHOICES, GROUPS, cli, write_inputs, write_votes

from regionharmony.study.build import build_study
from regionharmony.study.preference import luce_mm, preferred_over, tally
from regionharmony.study.votes import VotesError, load_key, load_votes


@pytest.fixture
def study(tmp_path) -> Path:
    group_dir, methods = write_inputs(tmp_path / "in", keys=GROUPS)
    build_study(group_dir, methods, tmp_path / "study")
    return tmp_path / "study.key.json"


def test_the_tally_matches_the_hand_computed_example(study, tmp_path):
    write_votes(tmp_path / "votes", study, CHOICES)
    result = tally(tmp_path / "votes", study, n_boot=500)
    table = result.table
    assert result.participants == 3 and not result.loaded.rejected
    # votes: full 2 + 2 = 4 (p1 twice, p2 and p3 once), l1 1, composite 1; 6 votes in all
    assert table["votes"].to_dict() == {"composite": 1, "full": 4, "l1": 1}
    assert table["preference"].to_dict() == pytest.approx(
        {"composite": 100 / 6, "full": 400 / 6, "l1": 100 / 6}
    )
    assert table["rank"].to_dict() == {"composite": 2, "full": 1, "l1": 2}
    # every group shows all three: the Plackett-Luce MLE is the vote share, 4/6, 1/6, 1/6
    assert table["strength"].to_dict() == pytest.approx(
        {"composite": 1 / 6, "full": 4 / 6, "l1": 1 / 6}
    )
    pairwise = preferred_over(table["strength"])
    assert pairwise.loc["full", "l1"] == pytest.approx(0.8)  # (4/6) / (4/6 + 1/6)
    assert pairwise.loc["l1", "composite"] == pytest.approx(0.5)
    # bootstrap over participants: full's share lies between 50 % (only p2 / p3 drawn) and
    # 100 % (only p1), and the interval holds the estimate
    low, high = table.loc["full", ["preference_low", "preference_high"]]
    assert 50 <= low <= 400 / 6 <= high <= 100
    for method in table.index:
        row = table.loc[method]
        assert row["preference_low"] <= row["preference"] <= row["preference_high"]
        assert row["strength_low"] <= row["strength"] <= row["strength_high"]
    # Fleiss' kappa, 2 groups x 3 raters: group 1 (full 2, l1 1) and group 2 (full 2,
    # composite 1) each agree in P_i = (2*1 + 0) / (3*2) = 1/3; p = (1/6, 4/6, 1/6),
    # P_e = 1/36 + 16/36 + 1/36 = 1/2; kappa = (1/3 - 1/2) / (1 - 1/2) = -1/3
    agreement = result.agreement
    assert agreement["observed"] == pytest.approx(1 / 3)
    assert agreement["expected"] == pytest.approx(1 / 2)
    assert agreement["kappa"] == pytest.approx(-1 / 3)
    assert agreement["groups"] == 2 and agreement["raters_per_group"] == 3


def test_skipped_groups_count_as_no_vote(study, tmp_path):
    choices = {"p1": {"HCOCO/c1_1_1": "l1", "HFlickr/f9_1_2": None}}
    write_votes(tmp_path / "votes", study, choices)
    result = tally(tmp_path / "votes", study, n_boot=50)
    assert result.table["votes"].to_dict() == {"composite": 0, "full": 0, "l1": 1}
    assert result.table.loc["l1", "preference"] == 100
    assert len(result.loaded.votes) == 2 and len(result.choices) == 1
    assert np.isnan(result.agreement["kappa"]) and result.agreement["groups"] == 0


def test_no_votes_is_an_empty_tally_not_a_failure(study, tmp_path):
    (tmp_path / "votes").mkdir()
    (tmp_path / "votes" / "README.md").write_text("drop votes files here\n")
    for folder in (tmp_path / "votes", tmp_path / "absent"):
        result = tally(folder, study, n_boot=50)
        assert result.choices.empty and result.table["votes"].sum() == 0
        assert result.table["preference"].isna().all() and not result.loaded.rejected


def test_plackett_luce_on_unequal_choice_sets():
    # A beats B 2:1 in {A, B}; B beats C 2:1 in {B, C}: p_A / p_B = 2 = p_B / p_C, so (4, 2, 1) / 7
    sets = np.array([[1, 1, 0], [0, 1, 1]], float)
    wins = np.array([[2, 1, 0], [0, 2, 1]], float)
    assert luce_mm(sets, wins) == pytest.approx(np.array([4, 2, 1]) / 7, abs=1e-9)
    # a method never chosen gets 0, one never shown NaN
    p = luce_mm(np.array([[1, 1, 0]], float), np.array([[3, 0, 0]], float))
    assert p[:2] == pytest.approx([1, 0]) and np.isnan(p[2])


def rejected_reasons(folder: Path, key_path: Path) -> dict[str, str]:
    loaded = load_votes(folder, load_key(key_path))
    return {path.name: message for path, message in loaded.rejected}


def edit(path: Path, change) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def test_malformed_foreign_and_tampered_files_are_rejected_by_name(study, tmp_path):
    votes = tmp_path / "votes"
    write_votes(votes, study, CHOICES)
    (votes / "broken.json").write_text("{not json")
    (votes / "list.json").write_text("[]")
    edit(votes / "p1.json", lambda d: d.update(study_id="s000000000000"))
    edit(votes / "p2.json", lambda d: d["votes"][0]["shown"].reverse())
    edit(votes / "p3.json", lambda d: d["votes"][0].update(choice="o123"))
    reasons = rejected_reasons(votes, study)
    assert set(reasons) == {"broken.json", "list.json", "p1.json", "p2.json", "p3.json"}
    assert "not a JSON file" in reasons["broken.json"]
    assert "not a JSON object" in reasons["list.json"]
    assert "from another study ('s000000000000'" in reasons["p1.json"]
    assert "order shown is not the one" in reasons["p2.json"]
    assert "unknown choice 'o123'" in reasons["p3.json"]
    assert all(message.startswith(str(votes)) for message in reasons.values())


def test_more_tampering_is_rejected(study, tmp_path):
    votes = tmp_path / "votes"
    write_votes(votes, study, CHOICES)

    def twice(d):
        d["votes"].append(d["votes"][0])

    edit(votes / "p1.json", twice)
    edit(votes / "p2.json", lambda d: d["votes"][0].update(group="gnope"))
    edit(votes / "p3.json", lambda d: d.update(participant="p3 "))
    reasons = rejected_reasons(votes, study)
    assert "twice" in reasons["p1.json"]
    assert "group 'gnope' is not in the study" in reasons["p2.json"]
    assert "surrounding spaces" in reasons["p3.json"]
    write_votes(votes, study, {"p4": CHOICES["p1"], "p5": CHOICES["p1"], "p6": CHOICES["p1"]})
    edit(votes / "p4.json", lambda d: d["group_order"].reverse())
    edit(votes / "p5.json", lambda d: d["votes"][0].update(position=7))
    edit(votes / "p6.json", lambda d: d["votes"][0].update(choice_index=9))
    reasons = rejected_reasons(votes, study)
    assert "group order" in reasons["p4.json"]
    assert "position 7, expected" in reasons["p5.json"]
    assert "choice_index 9 does not point at the choice" in reasons["p6.json"]


def test_cli_tally_prints_the_table(study, tmp_path, capsys):
    write_votes(tmp_path / "votes", study, CHOICES)
    (tmp_path / "votes" / "broken.json").write_text("{")
    argv = ["tally", "--votes-dir", str(tmp_path / "votes"), "--key", str(study)]
    assert cli([*argv, "--bootstrap", "50", "--json"]) == 0
    captured = capsys.readouterr()
    payload = json.loads(captured.out)
    assert payload["participants"] == 3 and payload["votes"] == 6
    assert payload["methods"]["full"]["votes"] == 4 and payload["rejected"][0].endswith(
        "broken.json"
    )
    assert captured.err.startswith("rejected: ") and "not a JSON file" in captured.err
    assert payload["agreement"]["kappa"] == pytest.approx(-1 / 3)
    assert cli([*argv, "--bootstrap", "50"]) == 0
    assert "3 participants, 6 votes" in capsys.readouterr().out


def test_a_second_file_of_a_participant_is_rejected_naming_the_first(study, tmp_path):
    votes = tmp_path / "votes"
    write_votes(votes, study, {"p1": CHOICES["p1"]}, name="a")
    write_votes(votes, study, {"p1": CHOICES["p2"]}, name="b")
    loaded = load_votes(votes, load_key(study))
    assert [f.path.name for f in loaded.files] == ["a.json"]
    [(path, message)] = loaded.rejected
    assert path.name == "b.json" and "duplicate" in message and str(votes / "a.json") in message


def test_per_participant_and_per_subset_tables(study, tmp_path):
    from regionharmony.study.preference import per_participant, per_subset

    write_votes(tmp_path / "votes", study, CHOICES)
    result = tally(tmp_path / "votes", study, n_boot=50)
    methods = list(result.key.methods)
    counts = per_participant(result.choices, methods)
    assert counts.loc["p2"].to_dict() == {"composite": 0, "full": 1, "l1": 1}
    subsets = per_subset(result.choices, methods)
    assert subsets.loc["HCOCO"].to_dict() == pytest.approx(
        {"composite": 0, "full": 200 / 3, "l1": 100 / 3}
    )
    assert isinstance(subsets, pd.DataFrame) and list(subsets.index) == ["HCOCO", "HFlickr"]


def test_the_papers_table5_is_transcribed_consistently():
    paper = pd.read_csv(Path(__file__).resolve().parents[1] / "paper_results" / "table5.csv")
    assert list(paper["method"]) == ["Copy-paste", "DIH", "BargainNet", "RainNet", "Ours"]
    assert list(paper["votes"]) == [326, 521, 491, 618, 816]
    assert paper["votes"].sum() == 28 * 99  # participants x groups, one vote each
    shares = (100 * paper["votes"] / paper["votes"].sum()).round(2)
    assert list(shares) == list(paper["preference"]) == [11.76, 18.80, 17.71, 22.29, 29.44]


def test_a_number_as_participant_id_is_refused_as_not_a_string(study, tmp_path):
    votes = tmp_path / "votes"
    write_votes(votes, study, {"p1": CHOICES["p1"], "p2": CHOICES["p2"]})
    edit(votes / "p1.json", lambda d: d.update(participant=5))
    edit(votes / "p2.json", lambda d: d.update(participant=None))
    reasons = rejected_reasons(votes, study)
    assert "participant id 5 is a number, not a string" in reasons["p1.json"]
    assert "no participant id (`participant` missing or null)" in reasons["p2.json"]
    assert not [m for m in reasons.values() if "surrounding spaces" in m]


def test_cli_tally_of_a_missing_votes_folder_is_an_error(study, tmp_path, capsys):
    from regionharmony.cli import main as cli_main

    missing = tmp_path / "no-such-votes"
    for run in (cli, lambda argv: cli_main(["user-study", *argv])):
        assert run(["tally", "--votes-dir", str(missing), "--key", str(study)]) == 1
        captured = capsys.readouterr()
        assert captured.out == ""
        assert captured.err == f"error: votes folder {missing} does not exist\n"
    (tmp_path / "file.json").write_text("{}")
    assert cli(["tally", "--votes-dir", str(tmp_path / "file.json"), "--key", str(study)]) == 1
    assert capsys.readouterr().err.endswith("file.json is not a folder\n")


def test_control_characters_and_long_values_are_escaped_in_messages(study, tmp_path, capsys):
    votes = tmp_path / "votes"
    write_votes(votes, study, {"p1": CHOICES["p1"]})
    spoof = "spoof\x1b[2K\rok.json"
    (votes / spoof).write_text("{")
    edit(votes / "p1.json", lambda d: d["votes"][0].update(choice="\x1b[31m" + "x" * 500))
    reasons = rejected_reasons(votes, study)
    assert reasons[spoof].startswith(repr(str(votes / spoof)) + ": not a JSON file")
    assert "unknown choice '\\x1b[31mxxx" in reasons["p1.json"] and reasons["p1.json"].endswith("…")
    assert len(reasons["p1.json"]) < 200
    assert cli(["tally", "--votes-dir", str(votes), "--key", str(study), "--bootstrap", "10"]) == 0
    err = capsys.readouterr().err
    assert "\x1b" not in err and "\r" not in err
    assert [line.startswith("rejected: ") for line in err.splitlines()] == [True, True]


def test_a_key_with_a_markup_method_name_is_refused(study, tmp_path, capsys):
    hostile = "<img src=x onerror=alert(1)>"

    def rename(d):
        d["methods"] = [hostile if m == "l1" else m for m in d["methods"]]
        for group in d["groups"]:
            for option in group["options"]:
                option["method"] = hostile if option["method"] == "l1" else option["method"]

    edit(study, rename)
    with pytest.raises(VotesError, match=r"method name '<img .*' is not letters, digits"):
        load_key(study)
    edit(study, lambda d: d.update(methods=[m.replace(hostile, "l1\n") for m in d["methods"]]))
    with pytest.raises(VotesError, match=r"method name 'l1\\n' is not letters"):
        load_key(study)
    (tmp_path / "votes").mkdir()
    assert cli(["tally", "--votes-dir", str(tmp_path / "votes"), "--key", str(study)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
