"""Graph answers for ``lookup``: entity profiles, comparisons, the entities showing a feature, the
entities of an organ, and an entity's markers (Gleason questions: ``gleason_answers.py``)."""

from __future__ import annotations

from typing import Any

from slidescout.tools.knowledge.graph import ConceptGraph

GraphAnswer = tuple[str, list[str], dict[str, Any]]


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
    if profile.who_name:
        lines.append(f"WHO name now: {profile.who_name}.")
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


def feature_answer(
    feature: str, graph: ConceptGraph, only: str | None = None, organ: str | None = None
) -> GraphAnswer:
    """The entities (and Gleason patterns) showing a feature; ``only`` keeps one node kind
    ('gleason_pattern' for "which Gleason pattern shows F"), ``organ`` the entities of one
    organ ("rhabdomyoblasts in a uterine tumour")."""
    holders = graph.entities_with(feature)
    label = graph.label(feature)
    category = graph.graph.nodes[feature].get("category", "")
    sources = [
        node
        for node, _, key in graph.graph.in_edges(feature, keys=True)
        if key == "has_feature"
        and (only is None or graph.kind(node) == only)
        and (organ is None or organ in graph.organs_of(node))
    ]
    if only is not None or organ is not None:
        wanted = {graph.short(n) for n in sources}
        holders = [h for h in holders if h in wanted]
        sources.sort(key=lambda n: holders.index(graph.short(n)))
    what = "Gleason patterns" if only == "gleason_pattern" else "Entities"
    where = f" in the {graph.label(organ).lower()}" if organ else ""
    text = f"{what}{where} with {label} ({category}): {'; '.join(holders) if holders else 'none in the concept graph'}."
    citations = [c for c in (graph.citation(n) for n in sources) if c]
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
