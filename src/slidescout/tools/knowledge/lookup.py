"""``lookup``: the one function the agent's knowledge tool wraps.

A question is first matched against Gleason/ISUP arithmetic, then the numeric criteria tables
(Nottingham, FNCLCC, WHO/ISUP renal, FIGO, oral cavity depth of invasion, HER2, ER, p16), then
the concept graph ("features of X", "markers of X", "distinguish X from Y", "which entities show
F", "tumors of organ O"); anything else goes to text search, ranked by how much of the question
each passage covers. A name matches an entity only when the entity's name covers every
distinguishing word of it ("follicular thyroid carcinoma" is not "thyroid carcinoma"). A subject
the reference does not cover gets a "not covered" answer with the nearest entries. The answer is
compact text with citations and published sources (at most ``MAX_TEXT_CHARS``) plus the hits.
"""

from __future__ import annotations

import difflib
import logging
from typing import Any, Literal

from pydantic import BaseModel

from slidescout.errors import SlidescoutError, ToolError
from slidescout.tools.knowledge.answers import (
    GraphAnswer,
    comparison_answer,
    feature_answer,
    markers_answer,
    organ_answer,
    profile_answer,
)
from slidescout.tools.knowledge.coverage import WELL_MATCHED, concepts, rank
from slidescout.tools.knowledge.criteria import criteria_answer
from slidescout.tools.knowledge.excerpts import (
    MAX_TEXT_CHARS,
    contrast,
    finish,
    format_hits,
    section_hits,
)
from slidescout.tools.knowledge.gleason_answers import gleason_answer
from slidescout.tools.knowledge.graph import (
    ConceptGraph,
    load_graph,
    normalize_name,
    spelling_variants,
)
from slidescout.tools.knowledge.index import (
    STOPWORDS,
    Hit,
    KnowledgeBase,
    default_knowledge_base,
)
from slidescout.tools.knowledge.questions import (
    CANCER_WORDS,
    COMPARISON_WORDS,
    DISTINGUISH,
    FEATURE_THEN_WHICH,
    FEATURES_OF,
    IN_ORGAN,
    MARKERS,
    NOT_TUMOURS,
    WHAT_IS,
    WITH_FEATURE,
    has_content,
    marker_subject,
    match,
    named_subjects,
    pair,
    strip_markers,
    subject_node,
)
from slidescout.tools.knowledge.terms import normalize_query
from slidescout.tools.knowledge.text import (
    FILLER,
    GENERIC,
    MARKER_WORDS,
    clip,
    content_words,
    plain,
    references,
    sentences,
    stem,
    with_references,
)

log = logging.getLogger("slidescout.knowledge")

MAX_K = 20
_RERANK = 10  # passages re-ranked by concept coverage before the k best are kept


class LookupResult(BaseModel):
    """A lookup's answer: ``text`` for the model (with citations and sources), the hits behind
    it, and for graph answers the structured ``data``. ``not_covered``: the reference has no
    entry for the subject asked about; the hits are the nearest entries."""

    query: str
    kind: Literal["graph", "criteria", "search", "not_covered", "no_match", "empty"]
    text: str
    hits: list[Hit] = []
    data: dict[str, Any] | None = None


def lookup(query: str, k: int = 5, kb: KnowledgeBase | None = None) -> LookupResult:
    """Answer a pathology reference question from the criteria tables, the concept graph or the
    knowledge index.

    When the question names a subject that the reference does not cover, the answer says so
    and lists the nearest entries instead of an unrelated passage.

    Args:
        query: a question or keywords, e.g. "features of lung adenocarcinoma", "distinguish
            KIRC from KICH", "ISUP grade for Gleason 4+3", "cribriform glands".
        k: how many reference passages to return (1-20).
        kb: the index to search; default: the user's index under SLIDESCOUT_HOME.
    """
    query = " ".join(normalize_query(query).split())
    if not query:
        raise ToolError(
            "lookup needs a query: a question or keywords, e.g. 'features of lung adenocarcinoma'"
        )
    if not 1 <= k <= MAX_K:
        raise ToolError(f"k must be between 1 and {MAX_K} (got {k})")
    if kb is None:
        kb = _default_kb()
    graph = load_graph()
    found = _criteria(query, graph, kb, k)
    if found is not None:
        return found
    answer = _graph_answer(query, graph)
    if answer is not None:
        text, citations, data = answer
        hits = with_references(kb, section_hits(kb, citations))
        refs = references(kb, citations)
        focus = contrast(hits, data, graph) if "comparison" in data else ""
        excerpt = not any(key in data for key in ("gleason", "gleason_score", "isup_grade_group"))
        limit = 420 if "markers" in data else 600
        text = finish(
            query, text, hits[:k] if excerpt else [], citations, refs, graph, kb, focus, limit
        )
        return LookupResult(query=query, kind="graph", text=text, hits=hits[:k], data=data)
    if len(kb) == 0:
        return LookupResult(
            query=query,
            kind="empty",
            text="The knowledge base is empty: add references with `slidescout kb add DIR` "
            "(folders of .md, .txt or .pdf files).",
        )
    unresolved = _asked_subjects(query.lower().strip(" ?.!"), graph)
    if unresolved:
        return _uncovered_subject(query, unresolved, kb, graph, k)
    asked = concepts(query, graph, kb)
    hits = rank(asked, kb.search(search_text(query), k=max(k, _RERANK)), kb)[:k]
    if not hits:
        return LookupResult(
            query=query,
            kind="no_match",
            text=f'No reference matched "{clip(query, 120)}". Try other words: an entity '
            "(e.g. 'lung adenocarcinoma'), a feature (e.g. 'cribriform') or a grading topic "
            "(e.g. 'Gleason 4+3', 'Nottingham mitotic count').",
        )
    hits = with_references(kb, hits)
    if (hits[0].coverage or 0.0) < WELL_MATCHED:
        return _not_covered(query, _salient_phrase(query), hits, graph, [])
    return LookupResult(
        query=query, kind="search", text=format_hits(query, hits, graph, kb), hits=hits
    )


def _criteria(query: str, graph: ConceptGraph, kb: KnowledgeBase, k: int) -> LookupResult | None:
    """An answer from a criteria table the question names (after Gleason questions, which the
    graph computes)."""
    if gleason_answer(query.lower().strip(" ?.!"), graph) is not None:
        return None
    found = criteria_answer(query, graph)
    if found is None:
        return None
    text, citations, data = found
    hits = with_references(kb, section_hits(kb, citations))[:k]
    return LookupResult(
        query=query, kind="criteria", text=clip(text, MAX_TEXT_CHARS), hits=hits, data=data
    )


def _default_kb() -> KnowledgeBase:
    try:
        return default_knowledge_base()
    except SlidescoutError as exc:  # an unusable home folder must not break the agent's tool
        log.warning("using an in-memory starter index: %s", exc)
        return KnowledgeBase.open(":memory:", embedder="")


# ---------------------------------------------------------------------- graph questions


def _graph_answer(query: str, graph: ConceptGraph) -> GraphAnswer | None:
    q = query.lower().strip(" ?.!")
    gleason = gleason_answer(q, graph)
    if gleason is not None:
        return gleason
    for pattern in DISTINGUISH:
        m = pattern.search(q)
        if m:
            a, b = pair(m.group(1), m.group(2), graph)
            if a and b and a != b:
                return comparison_answer(a, b, graph)
    for pattern in WITH_FEATURE:
        m = pattern.search(q)
        if m:
            feature = match(m.group(1), graph, ("feature",))
            if feature:
                return feature_answer(feature, graph)
    m = FEATURE_THEN_WHICH.search(q)
    if m:
        features = graph.mentions(m.group(1), kinds=("feature",))
        if features:
            only = "gleason_pattern" if "pattern" in m.group(2) else None
            return feature_answer(features[0], graph, only=only)
    if MARKERS.search(q):
        node = marker_subject(q, graph)
        if node and graph.kind(node) == "entity":
            return markers_answer(node, graph)
    m = IN_ORGAN.search(q)
    if m:
        organ = match(m.group(1), graph, ("organ",))
        if organ:
            return organ_answer(organ, graph)
    m = FEATURES_OF.search(q) or WHAT_IS.search(q)
    node = subject_node(m.group(1), graph) if m else None
    if node is None and not COMPARISON_WORDS.search(q):
        node = subject_node(
            q, graph
        )  # the query is (nearly) just a name: "LUAD", "gleason pattern 4"
    if node and graph.kind(node) == "organ" and CANCER_WORDS & set(normalize_name(q).split()):
        features = graph.mentions(q, kinds=("feature",))
        if features:  # "rhabdomyoblasts in a uterine tumour": that organ's tumours showing it
            return feature_answer(features[0], graph, organ=node)
        return organ_answer(node, graph)  # "lung cancer": the cancer types of the lung
    if node and has_content(node, graph):
        return profile_answer(node, graph)
    return None


# ---------------------------------------------------------------------- uncovered subjects


def _asked_subjects(q: str, graph: ConceptGraph) -> list[str]:
    """The subjects a question asks about by name that the concept graph does not know
    ('features of seminoma', 'ependymoma pseudorosettes'); [] when it names only known ones."""
    for pattern in DISTINGUISH:
        m = pattern.search(q)
        if m:
            a, b = pair(m.group(1), m.group(2), graph)
            sides = [t for t, n in ((m.group(1), a), (m.group(2), b)) if n is None]
            return [s for side in sides for s in _unknown(side, graph, whole=True)]
    m = FEATURES_OF.search(q) or WHAT_IS.search(q)
    marker = bool(MARKERS.search(q)) and not m
    text = m.group(1) if m else (strip_markers(q) if marker else "")
    known = marker_subject(q, graph) if marker else subject_node(text, graph)
    if text and known is None:
        unknown = _unknown(text, graph, whole=True)
        if unknown:
            return unknown
    return _unknown(q, graph)


def _unknown(text: str, graph: ConceptGraph, whole: bool = False) -> list[str]:
    """Tumour names in ``text`` that no graph entity has. With ``whole``, text that is itself
    entity-like ('features of X') counts as one name when no tumour word is found in it."""
    subjects = named_subjects(text)
    if not subjects and whole and _named(text):
        subjects = [text]
    return [s for s in subjects if not _known_subject(s, graph)]


def _known_subject(subject: str, graph: ConceptGraph) -> bool:
    """The graph knows the subject: by name, or as a loose form of one entity name (every word
    of it in that name: 'oropharyngeal carcinoma', 'serous carcinoma'). 'Follicular lymphoma'
    and 'anaplastic thyroid carcinoma' are not known: the distinguishing word is in no name."""
    if subject_node(subject, graph) is not None:
        return True
    words = normalize_name(subject).split()
    distinct = set(words) - GENERIC
    organ_words = {
        w
        for o in graph.mentions(subject, kinds=("organ",))
        for n in graph.names(o)
        for w in n.split()
    }
    if distinct and distinct <= organ_words:
        return True  # 'renal tumour', 'uterine tumour': the tumours of an organ
    return any(
        distinct <= set(name.split()) and words[-1] in name.split()
        for node in graph.nodes("entity")
        for name in graph.names(node)
    )


def _named(text: str) -> bool:
    """Whether ``text`` names an entity-like subject (not a feature, organ or topic)."""
    words = [w for w in content_words(text) if w not in MARKER_WORDS]
    if not words or all(w in GENERIC for w in words):
        return False  # "features of carcinoma": a topic for text search
    head = words[-1]
    return head in CANCER_WORDS or (head.endswith(("oma", "omas")) and head not in NOT_TUMOURS)


def _uncovered_subject(
    query: str, subjects: list[str], kb: KnowledgeBase, graph: ConceptGraph, k: int
) -> LookupResult:
    """A subject without an entry: passages that name it (its words in sequence, else all in
    one sentence) and cover the question, else 'not covered'."""
    asked = concepts(query, graph, kb)
    for subject in subjects:
        phrases = [
            variant
            for p in _phrases(subject, graph)
            for variant in spelling_variants(" ".join(kb.correct(w) for w in p.split()))
        ]
        # the name in sequence (also without its organ words), else the whole name in one sentence
        for phrase, any_order in [(p, False) for p in phrases] + [(phrases[0], True)]:
            hits = kb.search_phrase(phrase, k=k, query=search_text(query), any_order=any_order)
            if any_order:
                hits = [h for h in hits if _in_one_sentence(phrase, h)]
            hits = rank(asked, hits, kb)
            if hits and (hits[0].coverage or 0.0) >= WELL_MATCHED:
                hits = with_references(kb, hits)
                return _phrase_hits(query, subject, phrase, hits, graph, kb)
    distinct = [w for w in content_words(" ".join(subjects)) if w not in GENERIC]
    hits = kb.search(" ".join(distinct), k=min(k, 3)) if distinct else []
    hits = with_references(kb, hits)
    return _not_covered(query, subjects[0], hits, graph, subjects)


def _in_one_sentence(phrase: str, hit: Hit) -> bool:
    """Some sentence of the passage holds every word of the phrase ('a lymphoma with MYC and
    BCL2 rearrangements ("double hit")' names a double hit lymphoma)."""
    wanted = {stem(w) for w in phrase.split()}
    return any(
        wanted <= {stem(w) for w in normalize_name(sentence).split()}
        for sentence in sentences(plain(hit.text))
    )


def _phrase_hits(
    query: str, subject: str, phrase: str, hits: list[Hit], graph: ConceptGraph, kb: KnowledgeBase
) -> LookupResult:
    header = f'"{clip(subject, 80)}" has no section of its own; passages that mention {phrase}:'
    text = format_hits(query, hits, graph, kb, phrase=phrase, header=header)
    return LookupResult(query=query, kind="search", text=text, hits=hits)


def _phrases(subject: str, graph: ConceptGraph) -> list[str]:
    """The subject's words, then the same without organ words ('follicular carcinoma')."""
    words = [w for w in content_words(subject) if w not in MARKER_WORDS]
    out = [" ".join(words)]
    organ_words = {
        w
        for o in graph.mentions(" ".join(words), kinds=("organ",))
        for n in graph.names(o)
        for w in n.split()
    }
    rest = [w for w in words if w not in organ_words]
    if len(rest) >= 2 and rest != words:
        out.append(" ".join(rest))
    return [p for p in out if p]


def _not_covered(
    query: str, subject: str, hits: list[Hit], graph: ConceptGraph, subjects: list[str]
) -> LookupResult:
    nearest = _nearest_entities(" ".join(subjects) or subject, graph)
    lines = [
        f'Not covered: the reference has no entry for "{clip(subject, 80)}". '
        "Do not rely on the lookup for it."
    ]
    if nearest:
        lines.append("Nearest entries in the concept graph: " + "; ".join(nearest) + ".")
    if hits:
        lines.append(
            "Nearest passages: "
            + "; ".join(f"[{i}] {h.citation}" for i, h in enumerate(hits, 1))
            + "."
        )
    return LookupResult(
        query=query,
        kind="not_covered",
        text=clip("\n".join(lines), MAX_TEXT_CHARS),
        hits=hits,
        data={"nearest": nearest},
    )


def _nearest_entities(text: str, graph: ConceptGraph, n: int = 3) -> list[str]:
    words = set(content_words(text)) - GENERIC
    scored: list[tuple[float, str]] = []
    for node in graph.nodes("entity"):
        names = graph.names(node)
        best = max(
            difflib.SequenceMatcher(None, " ".join(sorted(words)), nm).ratio() for nm in names
        )
        shared = max(len(words & set(nm.split())) for nm in names)
        if shared or best > 0.6:
            scored.append((shared + best, node))
    return [graph.short(node) for _, node in sorted(scored, reverse=True)[:n]]


def search_text(query: str) -> str:
    """The query without words that only ask ('features of', 'histology'), which would rank
    passages that happen to say 'features' first; unchanged when nothing else is left."""
    kept = [w for w in query.split() if normalize_name(w) not in FILLER]
    return " ".join(kept) if any(normalize_name(w) not in STOPWORDS for w in kept) else query


def _salient_phrase(query: str) -> str:
    return " ".join(w for w in content_words(query) if w not in GENERIC) or query
