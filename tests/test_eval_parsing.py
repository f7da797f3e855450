"""Answer parsing on real-looking final replies, per answer format, failures included."""

from __future__ import annotations

import pytest

from slidescout.core.parsing import extract_json_objects
from slidescout.eval import Sample, isup_from_gleason, parse_answer

TCGA_OPTIONS = [
    "Glioblastoma multiforme",
    "Ovarian serous cystadenocarcinoma",
    "Liver hepatocellular carcinoma",
    "Lung squamous cell carcinoma",
    "Pancreatic adenocarcinoma",
    "Lung adenocarcinoma",
    "Bladder Urothelial Carcinoma",
    "Breast invasive carcinoma",
    "Kidney renal papillary cell carcinoma",
    "Colon Rectum adenocarcinoma",
    "Kidney renal clear cell carcinoma",
    "Uterine Corpus Endometrial Carcinoma",
    "Head and Neck squamous cell carcinoma",
    "Skin Cutaneous Melanoma",
    "Thyroid carcinoma",
    "Stomach adenocarcinoma",
    "Cervical squamous cell carcinoma and endocervical adenocarcinoma",
    "Brain Lower Grade Glioma",
    "Sarcoma",
    "Prostate adenocarcinoma",
    "Lymphoid Neoplasm Diffuse Large B-cell Lymphoma",
    "Esophageal carcinoma",
    "Kidney Chromophobe",
    "Uterine Carcinosarcoma",
    "Adrenocortical carcinoma",
    "Pheochromocytoma and Paraganglioma",
    "Mesothelioma",
    "Uveal Melanoma",
    "Cholangiocarcinoma",
    "Thymoma",
]
GTEX_OPTIONS = [
    "Esophagus",
    "Artery",
    "Skin",
    "Adipose",
    "Colon",
    "Heart",
    "Muscle",
    "Nerve",
    "Stomach",
    "Thyroid",
    "Breast",
    "Spleen",
    "Pancreas",
    "Lung",
    "Brain",
    "Small Intestine",
    "Adrenal Gland",
    "Liver",
    "Kidney",
    "Prostate",
]


def _s(fmt: str, options: list[str], answer: int | str = 1) -> Sample:
    return Sample(
        sample_id="t/1",
        task="t",
        question="q",
        options=options,
        answer=answer,
        answer_label="x",
        answer_format=fmt,
        image_path="x.svs",
    )  # type: ignore[arg-type]


TCGA = _s("index", TCGA_OPTIONS)
GTEX = _s("label", GTEX_OPTIONS, "Colon")
SLIDEBENCH = _s("index", ["2", "3", "4", "5"])
EXPERT = _s("index", ["Low", "Medium", "High", "Cannot determine"])
PANDA = _s("isup_json", [], 2)
MFQA = _s(
    "letter",
    [
        "Aortic dissection",
        "Pericardial effusion",
        "Aortic aneurysm",
        "Pulmonary embolism",
        "Normal",
    ],
    "B",
)

GPT_TCGA = """I navigated the slide systematically. At low magnification the overview shows a large, fragmented \
tissue section with extensive necrosis. Zooming into the region at (41200, 18000) revealed a highly cellular \
glial neoplasm with marked nuclear pleomorphism, brisk mitotic activity, pseudopalisading necrosis and \
microvascular (glomeruloid) proliferation.

**Differential considered:**
- Brain Lower Grade Glioma (option 18): lacks necrosis and microvascular proliferation.
- Sarcoma (option 19): no spindle-cell fascicles.

These features are diagnostic of glioblastoma (WHO grade 4).

```json
{"answer": 1}
```"""


@pytest.mark.parametrize(
    "reply, value, method",
    [
        (GPT_TCGA, 1, "json_number"),
        ('```json\n{"answer": "6"}\n```', 6, "json_number"),
        ("```json\n{\n  'answer': 6,\n}\n```", 6, "json_number"),  # single quotes, trailing comma
        (
            'Final answer:\n```JSON\n{\n  "answer": 11,\n}\n```\nLet me know if you need more detail.',
            11,
            "json_number",
        ),
        (
            'Based on the clear cytoplasm: {"answer": 11} (Kidney renal clear cell carcinoma).',
            11,
            "json_number",
        ),
        ('{"answer": "6. Lung adenocarcinoma"}', 6, "json_number"),
        ('{"answer": "Option 6"}', 6, "json_number"),
        ('{"answer": "lung adenocarcinoma"}', 6, "json_label"),
        ("{answer: 8}", 8, "json_number"),  # unquoted key
        ('{"diagnosis": "LUAD", "answer": [6]}', 6, "json_number"),
        ('{"result": {"answer": 6}}', 6, "json_number"),
        ("Answer: 11", 11, "answer_line"),
        ("**Final Answer:** 6", 6, "answer_line"),
        ("The answer is option 20.", 20, "answer_line"),
        (
            "After review, I choose option 4 (squamous features, keratin pearls).",
            4,
            "option_mention",
        ),
        ("The answer is Lung adenocarcinoma.", 6, "answer_text"),
        ("6", 6, "bare_number"),
        ("Lung adenocarcinoma", 6, "bare_label"),
        (
            "Morphology favours an adenocarcinoma of lung origin.\nDiagnosis: Lung adenocarcinoma",
            6,
            "label_mention",
        ),
        (
            'I first thought {"answer": 18} but the necrosis changes that.\n```json\n{"answer": 1}\n```',
            1,
            "json_number",
        ),
    ],
)
def test_index_replies(reply: str, value: int, method: str) -> None:
    p = parse_answer(reply, TCGA)
    assert (p.value, p.ok, p.method) == (value, True, method), p
    assert p.error is None and p.raw


@pytest.mark.parametrize(
    "reply, error",
    [
        ('```json\n{"answer": YOUR_ANSWER}\n```', "neither an option number nor an option"),
        ('{"answer": 31}', "out of range 1-30"),
        ('{"answer": null}', "not an option"),
        ("I cannot determine the diagnosis from the available images.", "no answer found"),
        (
            "Option 2 and option 6 are both plausible; more sampling is needed.",
            "several options mentioned (2, 6)",
        ),
        ("", "empty reply"),
        ("   \n", "empty reply"),
    ],
)
def test_index_failures(reply: str, error: str) -> None:
    p = parse_answer(reply, TCGA)
    assert not p.ok and p.value is None and error in (p.error or "")


def test_numeric_option_labels_read_as_numbers() -> None:
    # slidebench: options are ['2','3','4','5']; GIANT asks for the option NUMBER
    assert parse_answer('{"answer": 2}', SLIDEBENCH).value == 2
    assert parse_answer('```json\n{"answer": "3"}\n```', SLIDEBENCH).value == 3
    p = parse_answer(
        '{"answer": "5"}', SLIDEBENCH
    )  # out of range as a number: the label "5" (option 4)
    assert (p.value, p.method) == (4, "json_label_numeric")
    assert not parse_answer('{"answer": 7}', SLIDEBENCH).ok


def test_expert_vqa_short_labels() -> None:
    reply = (
        "At low power the tumor is densely cellular. High-power fields show 8-10 mitoses per 10 HPF, "
        'including atypical forms.\n\n```json\n{"answer": 3}\n```'
    )
    assert parse_answer(reply, EXPERT).value == 3
    assert parse_answer('{"answer": "High"}', EXPERT).value == 3
    assert parse_answer("Mitotic activity: cannot determine", EXPERT).value == 4
    # short labels in prose are not taken as an answer
    assert not parse_answer("At low power it looks cellular, at high power pleomorphic.", EXPERT).ok


@pytest.mark.parametrize(
    "reply, label",
    [
        (
            'This is squamous mucosa with muscularis propria.\n```json\n{"answer": 1}\n```',
            "Esophagus",
        ),
        ('{"answer": 5}', "Colon"),
        ('{"answer": "colon"}', "Colon"),
        ('{"answer": "Small intestine (ileum)"}', "Small Intestine"),
        ('{"answer": "16. Small Intestine"}', "Small Intestine"),
        ("Answer: 16", "Small Intestine"),
        ("Adrenal gland", "Adrenal Gland"),
        ("Final answer: Thyroid", "Thyroid"),
    ],
)
def test_gtex_labels(reply: str, label: str) -> None:
    p = parse_answer(reply, GTEX)
    assert p.ok and p.value == label
    assert GTEX_OPTIONS[p.details["index"] - 1] == label


def test_gtex_failures() -> None:
    assert not parse_answer('{"answer": 21}', GTEX).ok
    assert not parse_answer('{"answer": "Appendix"}', GTEX).ok


GPT_PANDA = """## Pathology report

**Specimen:** prostate needle core biopsy.

**Findings:** The core shows infiltrating small glands. Most of the tumor is composed of fused and \
cribriform glands (Gleason pattern 4), with a minor component of well-formed discrete glands (pattern 3). \
No pattern 5 is identified. Perineural invasion is not seen.

**Gleason score:** 4 + 3 = 7, ISUP grade group 3.

```json
{
  "primary_pattern": 4,
  "secondary_pattern": 3,
  "total_score": 7,
  "isup_grade": 3
}
```"""


@pytest.mark.parametrize(
    "reply, grade, method",
    [
        (GPT_PANDA, 3, "json_isup_grade"),
        ('{"primary_pattern": 3, "secondary_pattern": 4, "total_score": 7}', 2, "json_gleason"),
        (
            '{"primary_pattern": 4, "secondary_pattern": 3, "total_score": 7, "isup_grade": null}',
            3,
            "json_gleason",
        ),
        (
            '{"primary_pattern": 3, "secondary_pattern": 4, "total_score": 7, "isup_grade": "N/A"}',
            2,
            "json_gleason",
        ),
        (
            '{"primary_pattern": 0, "secondary_pattern": 0, "total_score": 0, "isup_grade": 0}',
            0,
            "json_isup_grade",
        ),
        (
            '{"primary_pattern": null, "secondary_pattern": null, "total_score": 0}',
            0,
            "json_gleason",
        ),
        (
            '{"primary_pattern": 4, "secondary_pattern": 4, "total_score": 8, "isup_grade": "Grade 4"}',
            4,
            "json_isup_grade",
        ),
        (
            '{"primary_pattern": "5", "secondary_pattern": "4", "total_score": "9", "isup_grade": "5"}',
            5,
            "json_isup_grade",
        ),
        (
            "{'primary_pattern': 3, 'secondary_pattern': 3, 'total_score': 6, 'isup_grade': 1,}",
            1,
            "json_isup_grade",
        ),
        ('{"total_score": 8}', 4, "json_gleason"),
        ('{"gleason_score": "3+4=7"}', 2, "json_gleason"),
        ("Gleason score 4+5=9, ISUP grade group 5.", 5, "regex_isup"),
        ("Impression: adenocarcinoma, Gleason 3 + 3 = 6.", 1, "regex_gleason"),
        ("ISUP Grade: 2", 2, "regex_isup"),
    ],
)
def test_panda_replies(reply: str, grade: int, method: str) -> None:
    p = parse_answer(reply, PANDA)
    assert (p.value, p.ok, p.method) == (grade, True, method), p


def test_panda_grade_beats_patterns_and_failures() -> None:
    # isup_grade is used even when the patterns say otherwise
    p = parse_answer(
        '{"primary_pattern": 3, "secondary_pattern": 4, "total_score": 7, "isup_grade": 3}', PANDA
    )
    assert p.value == 3 and p.details["primary_pattern"] == 3
    for reply, error in [
        ('{"isup_grade": 7}', "not a grade 0-5"),
        ('{"total_score": 7}', "do not decide a grade"),
        ("The tissue is insufficient for grading.", "no ISUP grade found"),
    ]:
        p = parse_answer(reply, PANDA)
        assert not p.ok and p.value is None and error in (p.error or ""), (reply, p)


def test_isup_from_gleason_table() -> None:
    assert [
        isup_from_gleason(3, 3),
        isup_from_gleason(3, 4),
        isup_from_gleason(4, 3),
        isup_from_gleason(4, 4),
        isup_from_gleason(3, 5),
        isup_from_gleason(4, 5),
        isup_from_gleason(5, 5),
    ] == [1, 2, 3, 4, 4, 5, 5]
    assert isup_from_gleason(0, 0) == 0 and isup_from_gleason(None, None, 7) is None
    assert isup_from_gleason(None, None, 10) == 5 and isup_from_gleason(6, 1) is None


GPT_MFQA = """Let me analyze each image.

**First image:** axial contrast-enhanced CT at the level of the heart shows a fluid collection surrounding \
the heart.
**Second image:** the collection is circumferential without an intimal flap in the aorta.

Option A (aortic dissection) would show an intimal flap; option C would show focal dilatation.

Answer: B"""


@pytest.mark.parametrize(
    "reply, letter, method",
    [
        (GPT_MFQA, "B", "answer_line"),
        ("Reasoning...\n**Answer:** (B)", "B", "answer_line"),
        ("Reasoning...\n**Answer: B**", "B", "answer_line"),
        ("answer: b", "B", "answer_line"),
        ("Answer: B. Pericardial effusion", "B", "answer_line"),
        (
            "Initially I thought Answer: A, but the second image changes this.\nAnswer: D",
            "D",
            "answer_line",
        ),
        ("Answer: I think the best choice is (C).\nAnswer: C", "C", "answer_line"),
        ("The final answer is $\\boxed{E}$", "E", "boxed"),
        ("**Final Answer**\n\n\\[ \\boxed{B} \\]", "B", "boxed"),
        ("Thus the correct answer is (C).", "C", "answer_is"),
        ("(B)", "B", "bare"),
        ("d.", "D", "bare"),
        ("My conclusion: Pulmonary embolism", "D", "label_mention"),
    ],
)
def test_letter_replies(reply: str, letter: str, method: str) -> None:
    p = parse_answer(reply, MFQA)
    assert (p.value, p.ok, p.method) == (letter, True, method), p


def test_letter_failures() -> None:
    p = parse_answer("Reasoning...\nAnswer: F", MFQA)  # 5 options: A-E
    assert not p.ok and "not among the options A-E" in (p.error or "")
    p = parse_answer("Answer: Answer: $LETTER", MFQA)
    assert not p.ok
    p = parse_answer("The images are not diagnostic enough to decide.", MFQA)
    assert not p.ok and "Answer: LETTER" in (p.error or "")
    assert not parse_answer("Answer: a tricky one, I cannot say", MFQA).ok


def test_extract_json_objects_skips_braces_in_strings_and_prose() -> None:
    text = 'Template {options} aside, {"note": "a } brace", "answer": 2} and \\boxed{B} then {"answer": 3,}'
    objs = extract_json_objects(text)
    assert [o for o, _ in objs] == [{"note": "a } brace", "answer": 2}, {"answer": 3}]


def test_unknown_format_and_no_options() -> None:
    assert not parse_answer('{"answer": 1}', _s("index", [])).ok
    s = TCGA.model_copy(update={"answer_format": "bogus"})
    p = parse_answer("x", s)
    assert not p.ok and "unknown answer format" in (p.error or "")
    free = parse_answer(
        "  A poorly differentiated carcinoma.\n", TCGA.model_copy(update={"answer_format": "free"})
    )
    assert free.ok and free.value == "A poorly differentiated carcinoma." and free.method == "free"


@pytest.mark.parametrize(
    "reply, method",
    [
        (
            '{"primary_pattern": null, "secondary_pattern": null, "total_score": null, "isup_grade": null}',
            "isup_null",
        ),
        (
            '{"primary_pattern": null, "secondary_pattern": null, "total_score": null, "isup_grade": "N/A"}',
            "isup_null",
        ),
        ('```json\n{"isup_grade": "Benign"}\n```', "isup_null"),
        ('{"isup_grade": "no cancer"}', "isup_null"),
        ("Benign", "benign_text"),
        ("Benign prostatic tissue; no cancer seen.", "benign_text"),
        ("ISUP grade 0", "regex_isup"),
        ('{"isup_grade": 0}', "json_isup_grade"),
    ],
)
def test_panda_null_and_benign_are_isup_0(reply: str, method: str) -> None:
    # the PANDA prompt defines grades 1-5 only: benign tissue answered with null / N/A / Benign is ISUP 0
    p = parse_answer(reply, PANDA)
    assert (p.value, p.ok, p.method) == (0, True, method), p


def test_panda_not_benign_and_patterns_still_decide() -> None:
    assert parse_answer("Not benign: Gleason 4+3.", PANDA).value == 3
    p = parse_answer('{"primary_pattern": 4, "secondary_pattern": 4, "isup_grade": null}', PANDA)
    assert (p.value, p.method) == (4, "json_gleason")


def test_panda_unclosed_json_is_salvaged() -> None:
    p = parse_answer(
        '```json\n{"primary_pattern": 3, "secondary_pattern": 4, "total_score": 7, "isup_grade": 2',
        PANDA,
    )
    assert (p.value, p.ok, p.method) == (2, True, "json_isup_grade")
    assert parse_answer('{"isup_grade": null', PANDA).value == 0


def test_response_tag_is_parsed_first() -> None:
    reply = '<report>Option 2 was considered, then ruled out.</report>\n<response>{"answer": 3}</response>'
    p = parse_answer(
        reply,
        Sample(
            sample_id="t",
            task="t",
            question="q",
            options=["a", "b", "c"],
            answer=3,
            answer_label="c",
            answer_format="index",
            image_path="x.svs",
        ),
    )
    assert (p.value, p.details.get("from")) == (3, "response_tag")


@pytest.mark.parametrize(
    "reply, letter, method",
    [
        (
            "So it is \\boxed{C}. Answer: B",
            "C",
            "official_boxed",
        ),  # boxed{} comes first in the official order
        ("Answer: A\nOn reflection... Answer: (D)", "D", "official_answer"),
        ("I choose (B) here", "B", "official_bracket"),
        ("B. is the one", "B", "official_dot"),
        ("It must be the liver lesion", "C", "official_text"),
        ("Answer: Based on the images, C", "B", "official_answer"),  # its quirk, kept
    ],
)
def test_medframeqa_official_order(reply: str, letter: str, method: str) -> None:
    sample = Sample(
        sample_id="m",
        task="medframeqa",
        question="q",
        options=["kidney", "spleen", "liver lesion", "lung"],
        answer="C",
        answer_label="liver lesion",
        answer_format="letter",
        image_path="x.png",
    )
    p = parse_answer(reply, sample, mode="medframeqa")
    assert (p.value, p.ok, p.method) == (letter, True, method), p
    assert parse_answer("", sample, mode="medframeqa").error == "empty reply"
