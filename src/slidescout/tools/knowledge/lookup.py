"""``lookup``: the one function the agent's knowledge tool wraps.

A question is first matched against the concept graph (Gleason/ISUP arithmetic, "features of X",
"distinguish X from Y", "which entities show F", "tumors of organ O"); anything else goes to text
search. The answer is compact text with citations (at most ``MAX_TEXT_CHARS``) plus the hits.
"""

from __future__ import annotations

import difflib
import logging
import re
from typing import Any, Literal

from pydantic import BaseModel

from slidescout.errors import SlidescoutError, ToolError
from slidescout.tools.knowledge.gleason import GLEASON_SOURCE, GRADE_GROUP_TEXT
from slidescout.tools.knowledge.graph import (
    AMBIGUOUS_ABBREVIATIONS,
    ConceptGraph,
    load_graph,
    normalize_name,
)
from slidescout.tools.knowledge.index import STOPWORDS, Hit, KnowledgeBase, default_knowledge_base

log = logging.getLogger("slidescout.knowledge")

MAX_TEXT_CHARS = 1500
MAX_K = 20
_SUBJECT_KINDS = ("entity", "organ", "gleason_pattern")

# --- question shapes (matched on a lower-cased, whitespace-collapsed query)
_PAIR = re.compile(r"(?<![\d.])([0-5])\s*\+\s*([0-5])(?![\d.])")
_GLEASON_WORDS = re.compile(r"\b(gleason|isup|grade|score|pattern|prostate|panda|gg)\b")
_TOTAL = re.compile(r"\bgleason\s+(score|sum|total)?\s*(?:of\s+|=\s*)?(\d{1,2})\b(?!\s*\+)")
_GRADE_GROUP = re.compile(
    r"\b(?:isup\s+(?:grade\s+)?(?:group\s+)?|grade\s+group\s+|gg\s*)([0-5])\b"
)
_FEATURES_OF = re.compile(
    r"\b(?:features?|hallmarks?|histology|histologic\s+features?|morphology|characteristics?|criteria|"
    r"findings|appearance|look\s+like)\s+(?:of|for|in)\s+(.+)$"
)
_DISTINGUISH = [
    re.compile(
        r"\b(?:distinguish(?:es|ing)?|differentiat(?:e|es|ing)|tell\s+apart|separate|discriminate)\s+(.+?)\s+(?:from|and|vs\.?|versus)\s+(.+)$"
    ),
    re.compile(r"\bdifferences?\s+between\s+(.+?)\s+and\s+(.+)$"),
    re.compile(r"\bcompar(?:e|ing)\s+(.+?)\s+(?:and|with|to|vs\.?|versus)\s+(.+)$"),
    re.compile(r"^(.+?)\s+(?:vs\.?|versus)\s+(.+)$"),
    re.compile(r"\btell\s+(.+?)\s+(?:from|and)\s+(.+?)(?:\s+apart)?$"),
]
_WITH_FEATURE = [
    re.compile(
        r"\b(?:which|what)\s+(?:\w+\s+){0,2}?(?:entities|entity|tumou?rs?|cancers?|carcinomas?|tissues?|neoplasms?|"
        r"lesions?|diagnos[ie]s|types?|patterns?|organs?)\s+(?:have|has|show|shows|display|displays|contain|contains|"
        r"with|feature|features|are\s+associated\s+with|exhibit|exhibits)\s+(.+)$"
    ),
    re.compile(
        r"^(?:entities|tumou?rs|cancers|tissues|patterns)\s+(?:with|showing|having)\s+(?:the\s+)?(?:feature\s+)?(.+)$"
    ),
    re.compile(
        r"\bwhere\s+(?:are|is|do|does)\s+(?:you\s+)?(?:see\s+|find\s+)?(.+?)\s*(?:seen|found|occur|present)?$"
    ),
]
_COMPARISON_WORDS = re.compile(
    r"\b(?:vs|versus|from|distinguish\w*|differen\w*|compar\w*|or|and)\b"
)
# Words that ask about a subject without naming it ("what do LUAD look like").
_FILLER = frozenset(
    "feature features hallmark hallmarks histology histological histologic morphology morphologic "
    "morphological appearance look looks like characteristic characteristics typical key main "
    "diagnosis diagnostic criteria".split()
)
_IN_ORGAN = re.compile(
    r"\b(?:tumou?rs|cancers|entities|neoplasms|carcinomas)\s+(?:that\s+)?(?:arise\s+|arising\s+|occur\s+|occurring\s+|are\s+found\s+)?(?:of|in|from)\s+(?:the\s+)?(.+)$"
)


class LookupResult(BaseModel):
    """A lookup's answer: ``text`` for the model (with citations), the hits behind it, and for
    graph answers the structured ``data``."""

    query: str
    kind: Literal["graph", "search", "no_match", "empty"]
    text: str
    hits: list[Hit] = []
    data: dict[str, Any] | None = None


def lookup(query: str, k: int = 5, kb: KnowledgeBase | None = None) -> LookupResult:
    """Answer a pathology reference question from the concept graph or the knowledge index.

    Args:
        query: a question or keywords, e.g. "features of lung adenocarcinoma", "distinguish
            KIRC from KICH", "ISUP grade for Gleason 4+3", "cribriform glands".
        k: how many reference passages to return (1-20).
        kb: the index to search; default: the user's index under SLIDESCOUT_HOME.
    """
    query = " ".join((query or "").split())
    if not query:
        raise ToolError(
            "lookup needs a query: a question or keywords, e.g. 'features of lung adenocarcinoma'"
        )
    if not 1 <= k <= MAX_K:
        raise ToolError(f"k must be between 1 and {MAX_K} (got {k})")
    if kb is None:
        kb = _default_kb()
    graph = load_graph()
    answer = _graph_answer(query, graph)
    if answer is not None:
        text, citations, data = answer
        hits = _section_hits(kb, citations)
        focus = _contrast(hits, data, graph) if "comparison" in data else ""
        excerpt = not any(key in data for key in ("gleason", "gleason_score", "isup_grade_group"))
        text = _finish(text, hits[:k] if excerpt else [], citations, focus)
        hits = hits[:k]
        return LookupResult(query=query, kind="graph", text=text, hits=hits, data=data)
    if len(kb) == 0:
        return LookupResult(
            query=query,
            kind="empty",
            text="The knowledge base is empty: add references with `slidescout kb add DIR` "
            "(folders of .md, .txt or .pdf files).",
        )
    hits = kb.search(query, k=k)
    if not hits:
        return LookupResult(
            query=query,
            kind="no_match",
            text=f'No reference matched "{_clip(query, 120)}". Try other words: an entity '
            "(e.g. 'lung adenocarcinoma'), a feature (e.g. 'cribriform') or a grading topic "
            "(e.g. 'Gleason 4+3', 'Nottingham mitotic count').",
        )
    return LookupResult(query=query, kind="search", text=_format_hits(query, hits), hits=hits)


def _default_kb() -> KnowledgeBase:
    try:
        return default_knowledge_base()
    except SlidescoutError as exc:  # an unusable home folder must not break the agent's tool
        log.warning("using an in-memory starter index: %s", exc)
        return KnowledgeBase.open(":memory:", embedder="")


# ---------------------------------------------------------------------- graph questions

GraphAnswer = tuple[str, list[str], dict[str, Any]]


def _graph_answer(query: str, graph: ConceptGraph) -> GraphAnswer | None:
    q = query.lower().strip(" ?.!")
    gleason = _gleason_answer(q, graph)
    if gleason is not None:
        return gleason
    for pattern in _DISTINGUISH:
        m = pattern.search(q)
        if m:
            a, b = _subject(m.group(1), graph), _subject(m.group(2), graph)
            if a and b and a != b:
                return _comparison_answer(a, b, graph)
    for pattern in _WITH_FEATURE:
        m = pattern.search(q)
        if m:
            feature = _match(m.group(1), graph, ("feature",))
            if feature:
                return _feature_answer(feature, graph)
    m = _IN_ORGAN.search(q)
    if m:
        organ = _match(m.group(1), graph, ("organ",))
        if organ:
            return _organ_answer(organ, graph)
    m = _FEATURES_OF.search(q)
    node = _subject(m.group(1), graph) if m else None
    if node is None and not _COMPARISON_WORDS.search(q):
        # the query is (nearly) just a name: "LUAD", "what is gleason pattern 4"
        node = _subject(q, graph, coverage=0.75)
    if node and _has_content(node, graph):
        return _profile_answer(node, graph)
    return None


def _subject(text: str, graph: ConceptGraph, coverage: float = 0.6) -> str | None:
    return _match(text, graph, _SUBJECT_KINDS, coverage)


def _has_content(node: str, graph: ConceptGraph) -> bool:
    profile = graph.profile_of(node)
    return bool(profile.features or profile.citation)


def _match(
    text: str, graph: ConceptGraph, kinds: tuple[str, ...], coverage: float = 0.6
) -> str | None:
    """A node named by ``text`` when the name covers most of it (so that 'cribriform glands in
    prostate' does not turn into the prostate)."""
    text = re.sub(r"^(?:the|a|an)\s+", "", text.strip(" ?.!,;:"))
    words = [w for w in normalize_name(text).split() if w not in STOPWORDS and w not in _FILLER]
    if not words:
        return None
    node = graph.resolve(" ".join(words), kinds=kinds)
    if node is None:
        return None
    joined = " ".join(words)
    names = {n for n in (normalize_name(a) for a in graph.aliases(node)) if n}
    if joined in names:
        return node
    covered = max((len(n.split()) for n in names if f" {n} " in f" {joined} "), default=0)
    similar = max(difflib.SequenceMatcher(None, joined, n).ratio() for n in names)
    return node if covered >= coverage * len(words) or similar >= 0.86 else None


def _gleason_answer(q: str, graph: ConceptGraph) -> GraphAnswer | None:
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
            return _profile_answer(f"gleason_pattern:{value}", graph)
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


def _profile_answer(node: str, graph: ConceptGraph) -> GraphAnswer:
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


def _comparison_answer(a: str, b: str, graph: ConceptGraph) -> GraphAnswer:
    comparison = graph.distinguish(a, b)
    assert comparison is not None
    short_a, short_b = _code_or_label(a, graph), _code_or_label(b, graph)
    lines = [f"{comparison.a} vs {comparison.b}."]
    lines.append(f"Only {short_a}: {'; '.join(comparison.only_a) or 'none listed'}.")
    lines.append(f"Only {short_b}: {'; '.join(comparison.only_b) or 'none listed'}.")
    lines.append(f"Shared: {'; '.join(comparison.shared) or 'none listed'}.")
    data = {"comparison": comparison.model_dump(), "a": a, "b": b}
    return "\n".join(lines), comparison.citations, data


def _feature_answer(feature: str, graph: ConceptGraph) -> GraphAnswer:
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


def _organ_answer(organ: str, graph: ConceptGraph) -> GraphAnswer:
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


def _code_or_label(node: str, graph: ConceptGraph) -> str:
    return graph.graph.nodes[node].get("code") or graph.label(node)


def _category_title(category: str) -> str:
    return {"ihc": "IHC", "normal structure": "Normal structures"}.get(
        category, category.capitalize()
    )


# ---------------------------------------------------------------------- text


def _section_hits(kb: KnowledgeBase, citations: list[str]) -> list[Hit]:
    hits: list[Hit] = []
    for citation in citations:
        source, _, section = citation.partition(" § ")
        hits.extend(kb.section(source, section))
    return hits


def _contrast(hits: list[Hit], data: dict[str, Any], graph: ConceptGraph) -> str:
    """Sentences of each entity's section that name the other one (the corpus's own
    "how to tell apart" advice)."""
    a, b = data["a"], data["b"]
    found: list[str] = []
    for node, other in ((a, b), (b, a)):
        citation = graph.citation_for(node)
        names = {normalize_name(n) for n in graph.aliases(other)}
        names = {n for n in names if len(n) > 2 and n not in AMBIGUOUS_ABBREVIATIONS}
        text = " ".join(_plain(h.text) for h in hits if h.citation == citation)
        for sentence in _sentences(text):
            padded = f" {normalize_name(sentence)} "
            if any(f" {n} " in padded for n in names):
                found.append(re.sub(r"^[A-Z]\w*(?: \w+){0,2}\. ", "", sentence.strip()))
    return " ".join(dict.fromkeys(found))


def _finish(text: str, hits: list[Hit], citations: list[str], focus: str = "") -> str:
    """Append reference excerpts (sentences comparing the two, or the opening) and sources."""
    sources = "Sources: " + "; ".join(dict.fromkeys(citations)) if citations else ""
    room = MAX_TEXT_CHARS - len(text) - len(sources) - 4
    if focus and room > 160:
        text = f"{text}\nHow to tell apart: {_clip(focus, room - 20)}"
    elif hits and room > 160:
        excerpt = _clip(" ".join(_plain(h.text) for h in hits[:1]), min(room - 12, 600))
        if len(hits) > 1 and room > 700:
            per = (room - 20) // 2
            excerpt = " | ".join(_clip(_plain(h.text), per) for h in hits[:2])
        text = f"{text}\nReference: {excerpt}"
    return _clip(f"{text}\n{sources}" if sources else text, MAX_TEXT_CHARS)


def _format_hits(query: str, hits: list[Hit]) -> str:
    terms = {t[:5] for t in normalize_name(query).split() if t not in STOPWORDS}
    header = f'References for "{_clip(query, 80)}":'
    budget = (MAX_TEXT_CHARS - len(header) - 4) // len(hits)
    parts = [header]
    for number, hit in enumerate(hits, start=1):
        title = f"[{number}] {hit.citation}"
        parts.append(f"{title}\n{_snippet(hit.text, terms, max(budget - len(title) - 2, 80))}")
    return _clip("\n".join(parts), MAX_TEXT_CHARS)


def _snippet(text: str, terms: set[str], budget: int) -> str:
    """The sentences that share the most words with the query, in their original order."""
    text = _plain(text)
    if len(text) <= budget:
        return text
    sentences = _sentences(text)
    scored = []
    for i, sentence in enumerate(sentences):
        words = {w[:5] for w in normalize_name(sentence).split()}
        scored.append((len(words & terms), -i, i))
    keep: list[int] = []
    used = 0
    for _, _, i in sorted(scored, reverse=True):
        size = len(sentences[i]) + 1
        if used + size > budget and keep:
            continue
        keep.append(i)
        used += size
        if used >= budget:
            break
    return _clip(" ... ".join(sentences[i] for i in sorted(keep)), budget)


def _sentences(text: str) -> list[str]:
    """Sentences, with short lead-ins such as "Differential." kept with what follows."""
    out: list[str] = []
    carry = ""
    for piece in re.split(r"(?<=[.!?])\s+(?=[A-Z0-9(\"'])", text):
        if not carry and len(piece.split()) <= 3 and piece.endswith("."):
            carry = piece
            continue
        out.append(f"{carry} {piece}" if carry else piece)
        carry = ""
    if carry:
        out.append(carry)
    return out


def _plain(text: str) -> str:
    return " ".join(text.replace("**", "").split())


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: max(limit - 3, 0)].rstrip() + "..."
