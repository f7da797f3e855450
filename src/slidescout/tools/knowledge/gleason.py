"""Gleason patterns, scores and ISUP grade groups: the arithmetic and the graph nodes for it.

Rules (ISUP 2014 consensus, Epstein et al. 2016; ISUP 2019, van Leenders et al. 2020; GUPS 2019,
Epstein et al. 2021): the primary pattern is the most extensive. On a needle biopsy the
secondary is the highest-grade remaining pattern, however small (a third, higher pattern
becomes the secondary: 4+4 with a focus of 5 is 4+5=9). On a radical prostatectomy the
secondary is the second most extensive pattern, and a third, higher pattern under 5% is
reported as a tertiary pattern beside the score, outside it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import networkx as nx
from pydantic import BaseModel

from slidescout.errors import DatasetError

GLEASON_SOURCE = "gleason.md"
SCORE_SECTION = f"{GLEASON_SOURCE} § Gleason score"
Specimen = Literal["biopsy", "prostatectomy"]


def check_pattern(value: int, allow_zero: bool = False) -> int:
    """``value`` when it is a Gleason pattern (1-5; 0 only for the PANDA 0+0), else ValueError."""
    if not (1 <= value <= 5 or (allow_zero and value == 0)):
        raise ValueError(f"Gleason patterns run from 1 to 5 (got {value})")
    return value


def score_patterns(patterns: Sequence[int], specimen: Specimen) -> tuple[int, int, int | None]:
    """(primary, secondary, tertiary) from the patterns in order of extent, most extensive first.

    Biopsy: the secondary is the highest of the other patterns, however small; no tertiary.
    Prostatectomy: primary and secondary by extent (one pattern is doubled); a third pattern
    higher than both is the tertiary (reported, not scored); a lower third one is dropped.
    """
    if not 1 <= len(patterns) <= 3:
        raise ValueError(f"give one to three Gleason patterns (got {len(patterns)})")
    for value in patterns:
        check_pattern(value)
    primary, rest = patterns[0], list(patterns[1:])
    if specimen == "biopsy":
        return primary, max(rest, default=primary), None
    secondary = rest[0] if rest else primary
    third = rest[1] if len(rest) > 1 else None
    tertiary = third if third is not None and third > max(primary, secondary) else None
    return primary, secondary, tertiary


def isup_grade_group(primary: int, secondary: int) -> int | None:
    """ISUP grade group for a Gleason primary+secondary pair; 0 for ``0+0`` (no carcinoma, the
    PANDA convention); None for pairs that are not valid gradings (ISUP 2014/WHO 2022): a
    low-grade pattern (1 or 2) mixed with a high-grade one (4 or 5), e.g. 2+5, 5+1 or 4+2."""
    if (primary, secondary) == (0, 0):
        return 0
    if not (1 <= primary <= 5 and 1 <= secondary <= 5):
        raise ValueError(f"Gleason patterns run from 1 to 5 (got {primary}+{secondary})")
    if not is_valid_pair(primary, secondary):
        return None
    total = primary + secondary
    if total <= 6:
        return 1
    if total == 7:
        return {(3, 4): 2, (4, 3): 3}.get((primary, secondary))
    if total == 8:
        return 4
    return 5


def is_valid_pair(primary: int, secondary: int) -> bool:
    """False when a pattern 1-2 is paired with a pattern 4-5: a tumour with pattern 4 or 5 is graded
    with its patterns 3-5, and patterns 1-2 are not assigned today (ISUP 2014; WHO 2022)."""
    low, high = min(primary, secondary), max(primary, secondary)
    return not (low <= 2 and high >= 4)


INVALID_PAIR_NOTE = (
    "not a valid Gleason grading: patterns 1 and 2 are not combined with pattern 4 or 5 "
    "(and are not assigned on biopsies today), so there is no ISUP grade group"
)

GRADE_GROUP_TEXT = {
    0: "no carcinoma (benign; PANDA labels it isup_grade 0, Gleason 0+0)",
    1: "Gleason score 6 or less (3+3)",
    2: "Gleason 3+4=7",
    3: "Gleason 4+3=7",
    4: "Gleason score 8 (4+4, 3+5, 5+3)",
    5: "Gleason score 9-10 (4+5, 5+4, 5+5)",
}


class GleasonGrade(BaseModel):
    primary: int
    secondary: int
    total: int
    grade_group: int | None
    note: str = ""
    citation: str = f"{GLEASON_SOURCE} § ISUP grade groups"
    tertiary: int | None = None  # a radical prostatectomy's tertiary pattern (not in the score)
    specimen: Specimen | None = None


def add_gleason_nodes(g: nx.MultiDiGraph, patterns: dict[Any, Any], origin: str) -> None:
    for group, text in GRADE_GROUP_TEXT.items():
        aliases = [
            f"isup grade {group}",
            f"grade group {group}",
            f"isup grade group {group}",
            f"gg{group}",
        ]
        g.add_node(
            f"isup:{group}",
            kind="isup",
            label=f"ISUP grade group {group}",
            value=group,
            description=text,
            aliases=aliases,
            citation=f"{GLEASON_SOURCE} § ISUP grade groups",
        )
    for total in range(2, 11):
        g.add_node(
            f"gleason_score:{total}",
            kind="gleason_score",
            label=f"Gleason score {total}",
            value=total,
            aliases=[f"gleason score {total}"],
        )
    for number in range(1, 6):
        spec = patterns.get(number) or patterns.get(str(number)) or {}
        node = f"gleason_pattern:{number}"
        g.add_node(
            node,
            kind="gleason_pattern",
            label=f"Gleason pattern {number}",
            aliases=[f"gleason pattern {number}", f"pattern {number}", f"gleason grade {number}"],
            citation=f"{GLEASON_SOURCE} § {spec.get('section', f'Pattern {number}')}",
        )
        for feature in spec.get("features", []):
            require_node(
                g,
                f"feature:{feature}",
                origin,
                f"Gleason pattern {number} names unknown feature {feature!r}",
            )
            g.add_edge(node, f"feature:{feature}", key="has_feature")
    for primary in range(1, 6):
        for secondary in range(1, 6):
            pair = f"gleason:{primary}+{secondary}"
            g.add_node(
                pair,
                kind="gleason",
                label=f"Gleason {primary}+{secondary}={primary + secondary}",
                aliases=[f"gleason {primary} {secondary}"],
            )
            g.add_edge(f"gleason_pattern:{primary}", pair, key="primary_of")
            g.add_edge(f"gleason_pattern:{secondary}", pair, key="secondary_of")
            g.add_edge(pair, f"gleason_score:{primary + secondary}", key="totals")
            isup = isup_grade_group(primary, secondary)
            if isup is not None:
                g.add_edge(pair, f"isup:{isup}", key="grade_group")
    prostate = "entity:prostate_adenocarcinoma"
    if prostate in g:
        for number in range(1, 6):
            g.add_edge(prostate, f"gleason_pattern:{number}", key="graded_by")


def require_node(g: nx.MultiDiGraph, node: str, origin: str, message: str) -> None:
    if node not in g:
        raise DatasetError(f"{origin}: {message}")
