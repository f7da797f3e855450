"""PANDA replies: only an answer that says benign is ISUP 0; a grade stated without JSON braces or as
a Gleason score ("3+4") parses; a hedge between two grades is no answer."""

from __future__ import annotations

import pytest

from slidescout.core.parsing import parse_answer
from slidescout.core.sample import Sample

PANDA = Sample(
    sample_id="p",
    task="panda",
    question="q",
    answer=2,
    answer_label="2",
    answer_format="isup_json",
    metric="balanced_accuracy",
    image_path="x.tiff",
)


@pytest.mark.parametrize(
    "reply, grade",
    [
        # a grade without braces, or with the JSON key written loosely
        ("isup_grade: 2", 2),
        ('"isup_grade": 3', 3),
        ("ISUP_grade = 4", 4),
        ("**ISUP grade group:** 5", 5),
        ("The answer is 2", 2),
        ("Answer: 4", 4),
        ("ISUP grade 2 and Gleason 3+4=7", 2),  # "and Gleason" is no hedge
        # a Gleason score as text or as a JSON string
        ('"3+4"', 2),
        ("3 + 4 = 7", 2),
        ("4+3", 3),
        ('{"isup_grade": "3+4"}', 2),
        ('{"isup_grade": "4+3=7"}', 3),
        ('{"gleason_score": "4+4=8", "isup_grade": null}', 4),  # a score: not "null means benign"
        ('{"primary_pattern": 3, "secondary_pattern": 3, "total_score": "3+3"}', 1),
        # benign answers
        ("Benign", 0),
        ("Benign prostatic tissue.", 0),
        ("Benign prostatic tissue; no cancer seen.", 0),
        ("No evidence of malignancy.", 0),
        ("Benign prostatic hyperplasia without carcinoma.", 0),
        ("Non-neoplastic, benign prostatic tissue.", 0),
        ('{"isup_grade": null}', 0),
        (
            "<report>The cores show a tumour-like crush artefact.</report><response>Benign</response>",
            0,
        ),
    ],
)
def test_panda_grade_is_read(reply: str, grade: int) -> None:
    p = parse_answer(reply, PANDA)
    assert (p.ok, p.value) == (True, grade), p


@pytest.mark.parametrize(
    "reply",
    [
        # benign mentioned next to cancer: mixed prose, no grade stated
        "Benign glands are admixed with the tumour; the grade is hard to assign.",
        "Mostly benign, with a small focus of adenocarcinoma.",
        "Benign? Hard to say; possibly cancer.",
        "This is not benign.",
        # hedges between two grades
        "The answer is 2 or 3",
        "ISUP grade 2-3",
        "Gleason score 3+4=7, ISUP grade 2 or 3",
        "isup_grade: 3 or 4",
        # nothing stated
        "The grade is hard to assign.",
    ],
)
def test_panda_mixed_prose_and_hedges_stay_unparsed(reply: str) -> None:
    p = parse_answer(reply, PANDA)
    assert not p.ok and p.value is None and p.error, p


def test_panda_unparsed_reasons_say_why() -> None:
    hedge = parse_answer("The answer is 2 or 3", PANDA)
    assert hedge.error is not None and "hedged" in hedge.error
    mixed = parse_answer("Benign glands are admixed with the tumour.", PANDA)
    assert mixed.error is not None and "cancer" in mixed.error
