"""Gleason grading with a third pattern (issue 26): on a biopsy the highest pattern becomes the
secondary; on a radical prostatectomy it is a tertiary pattern outside the score; without the
specimen the answer gives both and asks; patterns outside 1-5 are refused as bad input."""

from __future__ import annotations

import itertools

import pytest
from cli_helpers import run_cli

from slidescout.errors import ToolError
from slidescout.tools.knowledge import KnowledgeBase, lookup
from slidescout.tools.knowledge.gleason import isup_grade_group, score_patterns


@pytest.fixture(scope="module")
def kb() -> KnowledgeBase:
    return KnowledgeBase.open(":memory:", embedder="")


def _rule(patterns: tuple[int, ...], specimen: str) -> tuple[int, int, int | None]:
    """The ISUP 2014/2019 and GUPS 2019 rules, written out independently: patterns by extent."""
    primary = patterns[0]
    others = patterns[1:]
    if specimen == "biopsy":
        return primary, (max(others) if others else primary), None
    secondary = others[0] if others else primary
    highest_third = len(others) == 2 and others[1] > primary and others[1] > secondary
    return primary, secondary, (others[1] if highest_third else None)


@pytest.mark.parametrize("specimen", ["biopsy", "prostatectomy"])
def test_score_patterns_follows_the_specimen_rule(specimen):
    for n in (1, 2, 3):
        for patterns in itertools.product(range(1, 6), repeat=n):
            assert score_patterns(patterns, specimen) == _rule(patterns, specimen), patterns


def test_score_patterns_refuses_patterns_outside_1_to_5():
    for bad in ([6, 4], [4, 4, 6], [0, 3], []):
        with pytest.raises(ValueError):
            score_patterns(bad, "biopsy")


@pytest.mark.parametrize(
    "query",
    [
        "prostate biopsy gleason 4+4 with tertiary 5",
        "needle core biopsy: Gleason 4+4 and a minor tertiary pattern 5",
        "biopsy with patterns 4, 4 and 5",
        "PANDA gleason 4 + 4 + 5",
    ],
)
def test_a_higher_third_pattern_on_a_biopsy_is_the_secondary(kb, query):
    result = lookup(query, kb=kb)
    grade = result.data["gleason"]
    assert (grade["primary"], grade["secondary"], grade["grade_group"]) == (4, 5, 5)
    assert grade["specimen"] == "biopsy" and grade["tertiary"] is None
    assert "Gleason 4+5=9 -> ISUP grade group 5" in result.text
    assert "4+4=8" not in result.text
    assert result.hits[0].citation == "gleason.md § Gleason score"


def test_a_prostatectomy_keeps_the_score_and_reports_the_tertiary(kb):
    result = lookup("radical prostatectomy gleason 3+4 with tertiary pattern 5", kb=kb)
    grade = result.data["gleason"]
    assert (grade["primary"], grade["secondary"], grade["tertiary"]) == (3, 4, 5)
    assert grade["grade_group"] == 2 and grade["specimen"] == "prostatectomy"
    assert "tertiary pattern 5" in result.text and "4+5" not in result.text.split("\n")[0]


@pytest.mark.parametrize("query", ["gleason 4+4+5", "Gleason 4+4 with tertiary 5"])
def test_without_the_specimen_the_answer_gives_both_and_asks(kb, query):
    result = lookup(query, kb=kb)
    first = result.text.split("\n")[0]
    assert "needle biopsy or a radical prostatectomy?" in first
    assert "Gleason 4+5=9 -> ISUP grade group 5" in result.text  # biopsy
    assert "Gleason 4+4=8 -> ISUP grade group 4, with tertiary pattern 5" in result.text
    by = result.data["by_specimen"]
    assert by["biopsy"]["grade_group"] == 5 and by["prostatectomy"]["grade_group"] == 4
    assert result.data["specimen"] is None and "ask" in result.data


def test_a_lower_third_pattern_changes_nothing(kb):
    result = lookup("gleason 4+3+3", kb=kb)
    assert result.data["gleason"]["grade_group"] == 3
    assert "changes nothing" in result.text


@pytest.mark.parametrize(
    "query",
    [
        "gleason 6+6",
        "ISUP grade for gleason 3+7",
        "gleason score 12",
        "gleason pattern 6",
        "gleason 4+4+6",
        "gleason 0+3",
    ],
)
def test_patterns_outside_1_to_5_are_bad_input(kb, query):
    with pytest.raises(ToolError, match="patterns run from 1 to 5"):
        lookup(query, kb=kb)


def test_the_cli_refuses_a_bad_pattern_in_one_line(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("SLIDESCOUT_HOME", str(tmp_path))
    rc, out, err = run_cli(capsys, "lookup", "gleason 6+6")
    assert rc == 2 and out == ""
    assert err.startswith("error: not a Gleason grading (6+6)") and len(err.splitlines()) == 1


def test_renal_who_isup_grade_is_not_a_gleason_grade_group(kb):
    result = lookup("WHO/ISUP grade 2 nucleoli in clear cell RCC", kb=kb)
    assert result.kind == "criteria" and result.data["criteria"] == "who_isup_renal"
    assert "grade group" not in result.text and "visible but not prominent at 100x" in result.text
    assert result.hits[0].section == "Kidney renal clear cell carcinoma (KIRC)"


def test_two_pattern_answers_are_unchanged(kb):
    for query, group in (("4+3", 3), ("gleason 3+4", 2), ("isup grade for gleason 5+5", 5)):
        result = lookup(query, kb=kb)
        assert (
            result.data["gleason"]["grade_group"]
            == group
            == isup_grade_group(
                result.data["gleason"]["primary"], result.data["gleason"]["secondary"]
            )
        )
