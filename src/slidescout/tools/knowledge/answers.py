"""Graph answers for ``lookup``: Gleason/ISUP arithmetic, entity profiles, comparisons, the
entities showing a feature, the entities of an organ, and an entity's markers."""

from __future__ import annotations

import re
from typing import Any

from slidescout.tools.knowledge.gleason import GLEASON_SOURCE, GRADE_GROUP_TEXT
from slidescout.tools.knowledge.graph import ConceptGraph

GraphAnswer = tuple[str, list[str], dict[str, Any]]

_PAIR = re.compile(r"(?<![\d.])([0-5])\s*\+\s*([0-5])(?![\d.])")
_GLEASON_WORDS = re.compile(r"\b(gleason|isup|grade|score|pattern|prostate|panda|gg)\b")
_TOTAL = re.compile(r"\bgleason\s+(score|sum|total)?\s*(?:of\s+|=\s*)?(\d{1,2})\b(?!\s*\+)")
_GRADE_GROUP = re.compile(
    r"\b(?:isup\s+(?:grade\s+)?(?:group\s+)?|grade\s+group\s+|gg\s*)([0-5])\b"
)


def gleason_answer(q: str, graph: ConceptGraph) -> GraphAnswer | None:
    pair = _PAIR.search(q)
    if pair and (_GLEASON_WORDS.search(q) or len(q) <= 12):
        primary, secondary = int(pair.group(1)), int(pair.group(2))
        if (primary == 0) != (secondary == 0):
            return None
        grade = graph.gleason(primary, secondary)
        if grade.grade_group is None:
            head = (
                f"Gleason {primary}+{secondary}: not a valid pattern pair, so no ISUP grade group."
            )
        elif grade.grade_group == 0:
            head = "Gleason 0+0: no carcinoma; PANDA labels this isup_grade 0 (not an ISUP grade group)."
        else:
            head = f"Gleason {primary}+{secondary}={grade.total} -> ISUP grade group {grade.grade_group}."
        text = "\n".join(filter(None, [head, grade.note and f"Note: {grade.note}.", _GRADE_TABLE]))
        citations = [grade.citation]
        if grade.total == 7:
            citations.append(f"{GLEASON_SOURCE} § Gleason 3+4 versus 4+3")
        return text, citations, {"gleason": grade.model_dump()}
    total = _TOTAL.search(q)
    if total:
        value = int(total.group(2))
        if total.group(1) is None and 1 <= value <= 5:  # "gleason 4" means pattern 4
            return profile_answer(f"gleason_pattern:{value}", graph)
        pairs = graph.pairs_for_total(value)
        if pairs:
            shown = [
                f"{p} -> grade group {g}" if g is not None else f"{p} -> no group"
                for p, g in pairs
                if min(int(p[0]), int(p[2])) >= 3
            ] or [f"{p} -> grade group {g}" for p, g in pairs if g is not None]
            text = f"Gleason score {value}: " + "; ".join(shown) + "."
            if value <= 6:
                text += " Scores below 6 (patterns 1-2) are not assigned on biopsies today."
            text += "\n" + _GRADE_TABLE
            citations = [f"{GLEASON_SOURCE} § ISUP grade groups"]
            if value == 7:
                citations.append(f"{GLEASON_SOURCE} § Gleason 3+4 versus 4+3")
            return text, citations, {"gleason_score": value, "pairs": pairs}
    group = _GRADE_GROUP.search(q)
    if group and ("isup" in q or "grade group" in q or re.search(r"\bgg\s*\d", q)):
        value = int(group.group(1))
        members = graph.pairs_for_grade_group(value)
        text = f"ISUP grade group {value}: {GRADE_GROUP_TEXT[value]}."
        if members:
            text += " Pattern pairs: " + ", ".join(members) + "."
        text += "\n" + _GRADE_TABLE
        return (
            text,
            [f"{GLEASON_SOURCE} § ISUP grade groups"],
            {"isup_grade_group": value, "pairs": members},
        )
    return None


_GRADE_TABLE = (
    "ISUP: GG1 = 6 or less (3+3); GG2 = 3+4=7; GG3 = 4+3=7; GG4 = 8 (4+4, 3+5, 5+3); "
    "GG5 = 9-10 (4+5, 5+4, 5+5). Primary = most extensive pattern; on biopsies secondary = highest remaining."
)


def profile_answer(node: str, graph: ConceptGraph) -> GraphAnswer:
    profile = graph.profile_of(node)
    head = graph.short(node)
    kind = {
        "cancer": "cancer type",
        "normal": "normal tissue",
        "organ": "organ",
        "gleason_pattern": "prostate cancer grading pattern",
    }.get(profile.kind, profile.kind)
    lines = [
        f"{head}: {kind}"
        + (f"; organ: {', '.join(profile.organs)}" if profile.organs else "")
        + "."
    ]
    if profile.kind == "organ":
        lines[0] = f"{head}: organ. Normal histology features below."
    for category, labels in profile.features.items():
        lines.append(f"{_category_title(category)}: {'; '.join(labels)}.")
    if profile.kind == "gleason_pattern":
        number = int(node.split(":")[1])
        as_primary = [
            p
            for p in graph.pairs_for_grade_group(2)
            + graph.pairs_for_grade_group(3)
            + graph.pairs_for_grade_group(4)
            + graph.pairs_for_grade_group(5)
            + ["3+3"]
            if int(p[0]) == number
        ]
        if as_primary:
            groups = ", ".join(
                f"{p} -> GG{graph.gleason(int(p[0]), int(p[2])).grade_group}"
                for p in sorted(set(as_primary))
            )
            lines.append(f"As primary pattern: {groups}.")
    if profile.entities:
        lines.append(f"Entities in this organ: {'; '.join(profile.entities)}.")
    if profile.differentials:
        lines.append(f"Differentials: {'; '.join(profile.differentials)}.")
    citations = [profile.citation] if profile.citation else []
    return "\n".join(lines), citations, {"profile": profile.model_dump()}


def comparison_answer(a: str, b: str, graph: ConceptGraph) -> GraphAnswer:
    comparison = graph.distinguish(a, b)
    assert comparison is not None
    short_a, short_b = code_or_label(a, graph), code_or_label(b, graph)
    lines = [f"{comparison.a} vs {comparison.b}."]
    lines.append(f"Only {short_a}: {'; '.join(comparison.only_a) or 'none listed'}.")
    lines.append(f"Only {short_b}: {'; '.join(comparison.only_b) or 'none listed'}.")
    lines.append(f"Shared: {'; '.join(comparison.shared) or 'none listed'}.")
    data = {"comparison": comparison.model_dump(), "a": a, "b": b}
    return "\n".join(lines), comparison.citations, data


def feature_answer(feature: str, graph: ConceptGraph) -> GraphAnswer:
    holders = graph.entities_with(feature)
    label = graph.label(feature)
    category = graph.graph.nodes[feature].get("category", "")
    text = f"Entities with {label} ({category}): {'; '.join(holders) if holders else 'none in the concept graph'}."
    citations: list[str] = []
    for node, _, key in graph.graph.in_edges(feature, keys=True):
        citation = graph.citation(node)
        if key == "has_feature" and citation:
            citations.append(citation)
    return text, citations[:6], {"feature": label, "entities": holders}


def organ_answer(organ: str, graph: ConceptGraph) -> GraphAnswer:
    entities = graph.entities_in(organ)
    normal = [e for e in entities if e.startswith("Normal ")]
    cancers = [e for e in entities if e not in normal]
    text = (
        f"{graph.label(organ)}: cancer types: {'; '.join(cancers) or 'none in the concept graph'}; "
        f"normal tissue: {'; '.join(normal) or 'none'}."
    )
    citations: list[str] = []
    for _, target, key in graph.graph.out_edges(organ, keys=True):
        citation = graph.citation(target)
        if key == "has_entity" and citation:
            citations.append(citation)
    return text, citations[:6], {"organ": graph.label(organ), "entities": entities}


def code_or_label(node: str, graph: ConceptGraph) -> str:
    return graph.graph.nodes[node].get("code") or graph.label(node)


def _category_title(category: str) -> str:
    return {"ihc": "IHC", "normal structure": "Normal structures"}.get(
        category, category.capitalize()
    )


def markers_answer(node: str, graph: ConceptGraph) -> GraphAnswer:
    """The immunohistochemical and molecular features of an entity (for "markers of X")."""
    profile = graph.profile_of(node)
    lines = [f"{graph.short(node)}: markers."]
    for category in ("ihc", "molecular"):
        labels = profile.features.get(category)
        if labels:
            lines.append(f"{_category_title(category)}: {'; '.join(labels)}.")
    if len(lines) == 1:
        lines.append("No markers listed in the concept graph; see the reference below.")
    citations = [profile.citation] if profile.citation else []
    return "\n".join(lines), citations, {"profile": profile.model_dump(), "markers": True}
