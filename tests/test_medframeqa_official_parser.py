"""MedFrameQA's official answer extraction and score, side by side with slidescout's.

``_reference`` re-implements ``parse_multi_choice_response`` of haojinw0027/MedFrameQA
(``src/eval_process.py``) from its code, step by step, with the inputs its ``evaluate`` builds
(``add_letter`` options, ``all_choices`` from ``option.split(". ")[0]``, ``index2ans`` from
``opt.split('. ')[1]``). slidescout's ``parse_answer(..., mode="medframeqa")`` must agree with it on
every hand-written reply style below and on thousands of generated ones.
"""

from __future__ import annotations

import random

import pytest

from slidescout.core.parsing import parse_answer
from slidescout.core.sample import Sample
from slidescout.eval.metrics import ResultRecord, score_task

OPTIONS = [
    "Acute appendicitis",
    "Cholecystitis",
    "Pancreatitis",
    "Diverticulitis",
    "Renal colic",
    "Small bowel obstruction",
]


def _reference(response: str, options: list[str]) -> str:
    """The official rules, transcribed from the code's steps (not from slidescout)."""
    lettered = [f"{'ABCDEFGHIJKLMNOPQRSTUVWXYZ'[i]}. {o}" for i, o in enumerate(options)]
    all_choices = [o.split(". ")[0] for o in lettered]
    index2ans = {chr(65 + i): o.split(". ")[1] for i, o in enumerate(lettered)}
    # 1. boxed{X}: capital letters only, the first one that is an option
    i = 0
    while True:
        i = response.find("boxed{", i)
        if i < 0:
            break
        inner = response[i + 6 : i + 8]
        if (
            len(inner) == 2
            and inner[1] == "}"
            and "A" <= inner[0] <= "Z"
            and inner[0] in all_choices
        ):
            return inner[0]
        i += 1
    # 2. the first marker kind present, its last occurrence; the earliest choice after it
    answer_str = ""
    for marker in ["Answer:", "Answer*", "Final Answer", "final answer"]:
        if marker in response:
            answer_str = response[response.rindex(marker) + len(marker) :].strip()
            break
    if answer_str:
        hits = sorted((answer_str.index(c), c) for c in all_choices if c in answer_str)
        if hits:
            return hits[0][1]
    # 3. strip the edge punctuation (one kind after the other), pad with spaces
    for ch in ",.!?;:'":
        while response.startswith(ch):
            response = response[1:]
        while response.endswith(ch):
            response = response[:-1]
    response = " " + response + " "
    # 4-6. candidates: (X), else X., else option texts in a reply of more than 5 words
    kind, candidates = "bracket", [c for c in all_choices if "(" + c + ")" in response]
    if not candidates:
        kind, candidates = "dot", [c for c in all_choices if c + "." in response]
    if not candidates and len(response.split()) > 5:
        kind = "text"
        candidates = [k for k, v in index2ans.items() if v.lower() in response.lower()]
    if not candidates:
        return ""
    if len(candidates) == 1:
        return candidates[0]
    # 7. several: the one written last (numpy's argmax: the first of equal maxima)
    if kind == "bracket":
        where = [response.rfind("(" + c + ")") for c in candidates]
    elif kind == "dot":
        where = [response.rfind(c + ".") for c in candidates]
    else:
        where = [response.lower().rfind(index2ans[c].lower()) for c in candidates]
    return candidates[where.index(max(where))]


def _sample(options: list[str] = OPTIONS, answer: str = "B") -> Sample:
    return Sample(
        sample_id="m",
        task="medframeqa",
        question="q",
        options=options,
        answer=answer,
        answer_label=options["ABCDEFGHIJKLMNOPQRSTUVWXYZ".index(answer)],
        answer_format="letter",
        image_path="x.png",
    )


def _ours(reply: str, options: list[str] = OPTIONS) -> str:
    p = parse_answer(reply, _sample(options), mode="medframeqa")
    return str(p.value) if p.ok else ""


# reply -> what the official code extracts (worked out by hand from its rules, for 6 options)
STYLES: list[tuple[str, str]] = [
    ("Answer: A", "A"),
    ("Answer: (B)", "B"),
    ("**Answer:** C", "C"),
    ("answer: b", ""),  # lower-case marker: none of the four markers
    ("A.", ""),  # the trailing '.' is stripped first: " A " matches no form
    ("A", ""),
    ("(A)", "A"),
    ("Answer: Based on the images, C", "B"),  # the first capital option letter after Answer:
    ("Answer: Based on the frames, C", "B"),
    ("Answer: Cholecystitis", "C"),  # the C of the word
    ("Answer*: D", "D"),
    ("The final answer is E", "E"),
    ("Final Answer: F", "F"),  # "Answer:" is found inside "Final Answer:"
    ("\\boxed{C}", "C"),
    ("The final answer is $\\boxed{D}$", "D"),
    ("boxed{G}", ""),  # not an option
    ("So it is \\boxed{C}. Answer: B", "C"),  # boxed comes first
    ("Answer: A\nOn reflection, Answer: (D)", "D"),  # the last Answer:
    ("I think (B) is right, not (C).", "C"),  # the bracket written last
    ("B. Cholecystitis", "B"),
    ("The answer is B.", ""),  # '.' stripped, 4 words: nothing
    ("The answer is B. It fits the clinical picture best.", "B"),
    ("The images show an inflamed gallbladder consistent with cholecystitis", "B"),
    (
        "This could be pancreatitis but the imaging favours diverticulitis overall",
        "D",
    ),  # only option texts: the last mentioned
    ("Not appendicitis. Renal colic fits.", ""),  # 5 words: too short for option texts
    ("Answer:", ""),
    ("Answer: none of the above", ""),
    ("ANSWER: C", ""),
    ("Answer: c", ""),
    ("My answer is (E)", "E"),
    ("E)", ""),
    ("[D]", ""),
    ("Option D.", ""),
    ("Option D. Small bowel obstruction", "D"),
    ("**Final Answer**\n\n\\[ \\boxed{B} \\]", "B"),
    ("Final Answer\nC", "C"),
    ("Answer: A or B", "A"),
    ("Answer: Diverticulitis (D)", "D"),
    ("Answer: Acute appendicitis", "A"),
    ("Answer: Small bowel obstruction", ""),  # no capital A-F after the marker, 4 words
    ("Answer: the small bowel obstruction option, F", "F"),
    ("Answer: 4", ""),
    ("The correct choice is (F) small bowel obstruction, not (A).", "A"),
    ("Cholecystitis", ""),
    ("I'd say D. Also consider E.", "D"),
    ("\\boxed{b}", ""),
    (
        "Based on the imaging findings, the most likely diagnosis is acute appendicitis with perforation",
        "A",
    ),
    ("Final answer: B", ""),  # neither "Final Answer" nor "final answer"
    ("   ", ""),
    ("Answer: C.\nWait, re-examining frame 3, Answer: E.", "E"),
    ("**Answer: (C) Pancreatitis**", "C"),
    ("Answer: B\n\nExplanation: Cholecystitis is common in adults.", "B"),
    ("Explanation first. Answer: D. Because of the findings in Frame A.", "D"),
    ("Answer: E\n", "E"),
    ("'C'", ""),
    ("(C).", "C"),
]


def test_at_least_40_reply_styles() -> None:
    assert len(STYLES) >= 40 and len({r for r, _ in STYLES}) == len(STYLES)


@pytest.mark.parametrize("reply, expected", STYLES)
def test_reply_styles_match_the_official_rules(reply: str, expected: str) -> None:
    assert _reference(reply, OPTIONS) == expected, "the reference misreads the official rules"
    assert _ours(reply) == expected


def test_option_text_quirks() -> None:
    # index2ans keeps an option's text only up to its first ". "; an option inside another
    opts = ["Stage I. Early disease", "Stage II", "Cyst", "Renal cyst"]
    for reply in (
        "the lesion looks like stage i here and there",
        "overall the picture is most like a renal cyst on balance",
        "overall the picture is most like a cyst rather than a renal cyst",
    ):
        assert _ours(reply, opts) == _reference(reply, opts) != ""


_FILLERS = [
    "Based on the images",
    "The CT shows",
    "In frame 2 the MRI",
    "I think",
    "Looking at Image 3",
    "Considering all frames",
    "it is most likely",
    "Explanation:",
    "Step 1: compare",
    "OK",
    "the lesion",
    "Differential:",
]
_MARKERS = [
    "",
    "Answer:",
    "Answer: ",
    "**Answer:** ",
    "answer: ",
    "Answer*: ",
    "**Answer**: ",
    "Final Answer: ",
    "final answer: ",
    "The final answer is ",
    "Final answer: ",
    "ANSWER: ",
    "The answer is ",
    "My choice: ",
]
_FORMS = [
    "{L}",
    "({L})",
    "{L}.",
    "{L})",
    "[{L}]",
    "\\boxed{{{L}}}",
    "$\\boxed{{{L}}}$",
    "boxed{{{l}}}",
    "**{L}**",
    "{l}",
    "option {L}",
    "{L}. {text}",
    "{text}",
    "({L}) {text}",
    "{TEXT}",
    "`{L}`",
]
_ENDS = ["", ".", "!", "?", "'", ",", ";", ":", ".'", "\n", " ", "**"]
_POOL = OPTIONS + [
    "Stage I. Early disease",
    "Cyst",
    "Renal cyst",
    "Liver",
    "Fatty liver",
    "Normal",
    "Crohn's disease",
    "None of the above",
]


def _random_reply(rng: random.Random, options: list[str]) -> str:
    parts: list[str] = []
    for _ in range(rng.randint(1, 4)):
        kind = rng.random()
        letter = rng.choice("ABCDEFGH")
        text = rng.choice(options + _POOL)
        if kind < 0.3:
            parts.append(rng.choice(_FILLERS) + rng.choice(["", ",", ".", ":"]))
        else:
            form = rng.choice(_FORMS).format(
                L=letter, l=letter.lower(), text=text.lower(), TEXT=text
            )
            parts.append(rng.choice(_MARKERS) + form + rng.choice(_ENDS))
    return rng.choice([" ", "\n", "\n\n", ". ", " - "]).join(parts) + rng.choice(_ENDS)


def test_thousands_of_generated_replies_agree() -> None:
    rng = random.Random(20251207)
    n, disagree, found = 4000, [], 0
    for _ in range(n):
        options = rng.sample(_POOL, rng.randint(4, 6))
        reply = _random_reply(rng, options)
        ref = _reference(reply, options)
        found += ref != ""
        if _ours(reply, options) != ref:
            disagree.append((reply, options, ref, _ours(reply, options)))
    assert not disagree, disagree[:5]
    assert n * 0.3 < found < n * 0.95  # the generator covers both answers and non-answers


def _official_accuracy(replies: list[str | None], truths: list[str], options: list[str]) -> float:
    """``evaluate`` drops a result whose reply is exactly ""; a None reply makes the parser raise,
    which ``evaluate`` catches, dropping it too; ``compute_accuracy``: correct / len(results)."""
    kept = [(r, t) for r, t in zip(replies, truths, strict=True) if r is not None and r != ""]
    return sum(_reference(r, options) == t for r, t in kept) / len(kept)


def test_empty_replies_are_left_out_of_the_denominator_as_officially() -> None:
    replies: list[str | None] = [
        "Answer: B",
        "",
        "Answer: C",
        None,
        "   ",
        "Answer: Based on the frames, C",
        "A.",
        "The answer is (D)",
    ]
    truths = ["B", "B", "A", "C", "A", "B", "A", "D"]
    records = []
    for i, (reply, truth) in enumerate(zip(replies, truths, strict=True)):
        sample = _sample(answer=truth).model_copy(update={"sample_id": f"m{i}"})
        parsed = parse_answer(reply, sample, mode="medframeqa")
        records.append(ResultRecord.from_answer(sample, parsed))
    score = score_task(records, n_bootstrap=10)
    assert score.n_empty == 2  # "" and None; a reply of spaces is parsed (and wrong)
    assert score.value_excluding_empty == pytest.approx(
        _official_accuracy(replies, truths, OPTIONS)
    )
    assert score.value_excluding_empty == pytest.approx(3 / 6)
