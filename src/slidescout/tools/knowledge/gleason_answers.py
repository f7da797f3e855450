"""Gleason questions for ``lookup``: pattern pairs and triples, scores and ISUP grade groups.

A third pattern ("4+4+5", "4+4 with tertiary 5", "patterns 4, 4 and 5") is graded by the
specimen rule (see ``gleason.py``): on a needle biopsy it becomes the secondary when it is the
highest; on a radical prostatectomy it is a tertiary pattern outside the score. When the
question does not say which specimen it is, the answer gives both and asks. A pattern outside
1-5 or a score outside 2-10 is bad input (a ``ToolError``), never a passage.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from slidescout.errors import ToolError
from slidescout.tools.knowledge.answers import GraphAnswer, profile_answer
from slidescout.tools.knowledge.gleason import (
    GLEASON_SOURCE,
    GRADE_GROUP_TEXT,
    SCORE_SECTION,
    GleasonGrade,
    Specimen,
    score_patterns,
)
from slidescout.tools.knowledge.graph import ConceptGraph

GROUPS_SECTION = f"{GLEASON_SOURCE} § ISUP grade groups"
SEVEN_SECTION = f"{GLEASON_SOURCE} § Gleason 3+4 versus 4+3"

_N = r"(\d{1,2})"
# "4+4", "4 + 4 + 5", "4+4 with (a) tertiary (pattern) 5", "4+3 (tertiary 5)"
_PATTERNS = re.compile(
    rf"(?<![\d.]){_N}\s*\+\s*{_N}(?:\s*\+\s*{_N}|[\s,;(]+(?:(?:with|and|plus)\s+)?(?:an?\s+)?"
    rf"(?:(?:minor|small|focal)\s+)?tertiary\s+(?:gleason\s+)?(?:pattern\s+|grade\s+)?{_N})?(?![\d.])"
)
_LISTED = re.compile(rf"\bpatterns\s+{_N}\s*,\s*{_N}\s*,?\s*(?:and\s+)?{_N}\b")
_CONTEXT = re.compile(
    r"\b(?:gleason|isup|prostat\w*|panda|grade\s+groups?|gg\s*\d|tertiary|patterns?|biops\w+)\b"
)
# Other grading systems that also write "N+" or say "ISUP": not a Gleason question.
_OTHER_SYSTEM = re.compile(r"\bwho\s*/?\s*isup\b|\bher2\b|\bnottingham\b|\bfnclcc\b|\brenal\b")
_TOTAL = re.compile(r"\bgleason\s+(score|sum|total)?\s*(?:of\s+|=\s*)?(\d{1,2})\b(?!\s*\+)")
_PATTERN = re.compile(r"\bgleason\s+(?:pattern|grade)\s+(\d{1,2})\b(?!\s*\+)")
_GRADE_GROUP = re.compile(
    r"\b(?:isup\s+(?:grade\s+)?(?:group\s+)?|grade\s+group\s+|gg\s*)([0-5])\b"
)
_BIOPSY = re.compile(r"\b(?:biops\w*|needle|cores?|trus|panda)\b")
_PROSTATECTOMY = re.compile(r"\b(?:prostatectom\w*|radical|rp|whole[\s-]mount)\b")

_GRADE_TABLE = (
    "ISUP: GG1 = 6 or less (3+3); GG2 = 3+4=7; GG3 = 4+3=7; GG4 = 8 (4+4, 3+5, 5+3); "
    "GG5 = 9-10 (4+5, 5+4, 5+5). Primary = most extensive pattern; on biopsies secondary = "
    "highest remaining, however small; tertiary patterns only on radical prostatectomies."
)


def gleason_answer(q: str, graph: ConceptGraph) -> GraphAnswer | None:
    """The answer to a Gleason question (``q`` lower-cased), or None when it is not one."""
    if _OTHER_SYSTEM.search(q):
        return None
    patterns = _patterns(q)
    if patterns is not None:
        return _patterns_answer(patterns, _specimen(q), graph)
    pattern = _PATTERN.search(q)
    if pattern and not 1 <= int(pattern.group(1)) <= 5:
        raise ToolError(_bad(f"pattern {pattern.group(1)}"))
    total = _TOTAL.search(q)
    if total:
        return _total_answer(int(total.group(2)), total.group(1) is not None, graph)
    group = _GRADE_GROUP.search(q)
    if group and ("isup" in q or "grade group" in q or re.search(r"\bgg\s*\d", q)):
        value = int(group.group(1))
        members = graph.pairs_for_grade_group(value)
        text = f"ISUP grade group {value}: {GRADE_GROUP_TEXT[value]}."
        if members:
            text += " Pattern pairs: " + ", ".join(members) + "."
        data = {"isup_grade_group": value, "pairs": members}
        return f"{text}\n{_GRADE_TABLE}", [GROUPS_SECTION], data
    return None


def _bad(what: str) -> str:
    return (
        f"not a Gleason grading ({what}): patterns run from 1 to 5 and a score adds two of them "
        "(2-10; 6-10 in practice; 0+0 is PANDA's benign label); ask e.g. 'gleason 4+3' or 'gleason 4+4 with tertiary 5 on a biopsy'"
    )


def _patterns(q: str) -> list[int] | None:
    """The patterns a question gives, most extensive first; None when it gives none."""
    m = _PATTERNS.search(q)
    found: list[str] = []
    if m and (_CONTEXT.search(q) or len(q) <= 12):
        found = [g for g in m.groups() if g is not None]
    else:
        listed = _LISTED.search(q)
        if listed and _CONTEXT.search(q):
            found = list(listed.groups())
    if not found:
        return None
    values = [int(v) for v in found]
    if values[:2] == [0, 0] and len(values) == 2:
        return values  # PANDA's benign label
    if any(not 1 <= v <= 5 for v in values):
        raise ToolError(_bad("+".join(found)))
    return values


def _specimen(q: str) -> Specimen | None:
    biopsy, prostatectomy = bool(_BIOPSY.search(q)), bool(_PROSTATECTOMY.search(q))
    if biopsy == prostatectomy:
        return None  # neither named, or both: the answer gives both
    return "biopsy" if biopsy else "prostatectomy"


def _grade(patterns: Sequence[int], specimen: Specimen, graph: ConceptGraph) -> GleasonGrade:
    primary, secondary, tertiary = score_patterns(patterns, specimen)
    grade = graph.gleason(primary, secondary)
    return grade.model_copy(
        update={"tertiary": tertiary, "specimen": specimen, "citation": SCORE_SECTION}
    )


def _head(grade: GleasonGrade) -> str:
    if grade.grade_group is None:
        return (
            f"Gleason {grade.primary}+{grade.secondary}: not a valid pattern pair, "
            "so no ISUP grade group"
        )
    return (
        f"Gleason {grade.primary}+{grade.secondary}={grade.total} -> ISUP grade group "
        f"{grade.grade_group}"
    )


def _patterns_answer(
    patterns: list[int], specimen: Specimen | None, graph: ConceptGraph
) -> GraphAnswer:
    if patterns == [0, 0]:
        grade = graph.gleason(0, 0)
        head = (
            "Gleason 0+0: no carcinoma; PANDA labels this isup_grade 0 (not an ISUP grade group)."
        )
        return f"{head}\n{_GRADE_TABLE}", [GROUPS_SECTION], {"gleason": grade.model_dump()}
    if len(patterns) == 3 and patterns[2] not in patterns[:2] and patterns[2] > patterns[1]:
        return _third_pattern_answer(patterns, specimen, graph)
    grade = graph.gleason(patterns[0], patterns[1] if len(patterns) > 1 else patterns[0])
    lines = [_head(grade) + "."]
    if grade.note:
        lines.append(f"Note: {grade.note}.")
    citations = [grade.citation] + ([SEVEN_SECTION] if grade.total == 7 else [])
    if len(patterns) == 3:
        lines.append(
            f"The third pattern ({patterns[2]}) is no higher than the secondary, so it changes "
            "nothing (on a biopsy or a prostatectomy)."
        )
        citations.insert(0, SCORE_SECTION)
    lines.append(_GRADE_TABLE)
    return "\n".join(lines), citations, {"gleason": grade.model_dump()}


def _third_pattern_answer(
    patterns: list[int], specimen: Specimen | None, graph: ConceptGraph
) -> GraphAnswer:
    """Two patterns plus a third, higher one: the biopsy and prostatectomy rules differ."""
    third = patterns[2]
    given = f"{patterns[0]}+{patterns[1]} with a third, higher pattern {third}"
    biopsy = _grade(patterns, "biopsy", graph)
    resection = _grade(patterns, "prostatectomy", graph)
    on_biopsy = (
        f"needle biopsy the highest pattern, however small, becomes the secondary: {_head(biopsy)}"
    )
    if resection.tertiary is not None:
        on_resection = (
            f"radical prostatectomy: {_head(resection)}, with tertiary pattern {third} reported "
            "beside the score, not in it (a third, highest pattern under 5% of the tumour)"
        )
    else:
        on_resection = (
            f"radical prostatectomy: {_head(resection)} (primary and secondary by extent; "
            f"pattern {third} is not the highest, so it is no tertiary pattern)"
        )
    if specimen == "biopsy":
        lines = [
            f"Gleason {given}: on a {on_biopsy}. Tertiary patterns apply only to radical "
            "prostatectomies."
        ]
    elif specimen == "prostatectomy":
        lines = [f"Gleason {given}: on a {on_resection}."]
    else:
        lines = [
            f"Gleason {given}: the grade depends on the specimen. Is it a needle biopsy or a "
            "radical prostatectomy?",
            f"- On a {on_biopsy}.",
            f"- On a {on_resection}.",
        ]
    lines.append(_GRADE_TABLE)
    data: dict[str, Any] = {
        "gleason_patterns": patterns,
        "specimen": specimen,
        "gleason": (resection if specimen == "prostatectomy" else biopsy).model_dump(),
        "by_specimen": {"biopsy": biopsy.model_dump(), "prostatectomy": resection.model_dump()},
    }
    if specimen is None:
        data["ask"] = "specimen: needle biopsy or radical prostatectomy"
    return "\n".join(lines), [SCORE_SECTION, GROUPS_SECTION], data


def _total_answer(value: int, named: bool, graph: ConceptGraph) -> GraphAnswer:
    """'gleason score 8' (or 'gleason 8'); 'gleason 4' alone means pattern 4."""
    if not named and 1 <= value <= 5:
        return profile_answer(f"gleason_pattern:{value}", graph)
    pairs = graph.pairs_for_total(value)
    if not pairs:
        raise ToolError(_bad(f"score {value}"))
    shown = [
        f"{p} -> grade group {g}" if g is not None else f"{p} -> no group"
        for p, g in pairs
        if min(int(p[0]), int(p[2])) >= 3
    ] or [f"{p} -> grade group {g}" for p, g in pairs if g is not None]
    text = f"Gleason score {value}: " + "; ".join(shown) + "."
    if value <= 6:
        text += " Scores below 6 (patterns 1-2) are not assigned on biopsies today."
    citations = [GROUPS_SECTION] + ([SEVEN_SECTION] if value == 7 else [])
    return f"{text}\n{_GRADE_TABLE}", citations, {"gleason_score": value, "pairs": pairs}
