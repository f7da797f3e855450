"""How much of a question a passage covers, counted in concepts rather than words.

A question is split into concepts: the entities, features and organs it names (a passage covers
an entity fully when it is that entity's own section, so "PDAC" is covered by the pancreatic
adenocarcinoma section, and half when it names the entity by any of its names), then its remaining distinguishing words
(misspellings corrected to the corpus's words). Words that only ask ("definition", "criteria",
"versus") and single letters ("H&E") are not concepts. Each concept weighs its inverse document
frequency in the index, so the rarest word of a question counts the most.

``lookup`` ranks text-search passages by this coverage (BM25 order within equal coverage) and
refuses a best passage that covers less than half of the question's weight.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from slidescout.tools.knowledge.graph import (
    AMBIGUOUS_ABBREVIATIONS,
    ConceptGraph,
    normalize_name,
    spelling_variants,
)
from slidescout.tools.knowledge.index import KnowledgeBase
from slidescout.tools.knowledge.models import Hit
from slidescout.tools.knowledge.terms import STOPWORDS
from slidescout.tools.knowledge.text import ASKING, FILLER, GENERIC, MARKER_WORDS

WELL_MATCHED = 0.5  # share of the question's weight the best passage must cover
MENTION_SHARE = 0.5  # an entity named in another entity's section counts half
_DISTINCTIVE = 2  # a feature of at most this many entities is "about" their sections
_MIN_WEIGHT = 1.0


@dataclass
class Concept:
    """One thing a question asks about: any of ``terms`` in a passage covers it, and so does
    being one of ``sections`` (the citation of an entity's own section)."""

    name: str
    terms: list[str]
    weight: float = 1.0
    sections: set[str] = field(default_factory=set)


def concepts(query: str, graph: ConceptGraph, kb: KnowledgeBase) -> list[Concept]:
    """The concepts of a question, each weighted by its idf in ``kb``."""
    words = normalize_name(query).split()
    padded = f" {' '.join(words)} "
    named = graph.mentions(query, kinds=("entity", "feature", "organ"))
    used: set[str] = set()
    out: list[Concept] = []
    for node in named:
        said = [n for n in graph.names(node) if f" {n} " in padded]
        names = sorted(
            n for n in graph.names(node) if len(n) > 2 and n not in AMBIGUOUS_ABBREVIATIONS
        )
        if not names or not said:
            continue
        used.update(w for n in said for w in n.split())
        weights = [w for w in kb.term_weights(names).values() if w > 0]
        weight = max(min(weights) if weights else _MIN_WEIGHT, _MIN_WEIGHT)
        out.append(Concept(graph.label(node), names, weight, _sections(node, graph)))
    rest = [
        w
        for w in dict.fromkeys(words)
        if w not in used and len(w) > 1 and not w.isdigit() and not _asks(w)
    ]
    corrected = {w: kb.correct(w) for w in rest}
    idf = kb.term_weights(list(corrected.values()))
    out += [Concept(w, spelling_variants(corrected[w]), max(idf[corrected[w]], 0.1)) for w in rest]
    return out


def _sections(node: str, graph: ConceptGraph) -> set[str]:
    """The sections about a node: an entity's own; for a distinctive feature (one or two
    holders: pseudopalisading necrosis), those of the entities and Gleason patterns showing it."""
    kind = graph.kind(node)
    if kind == "entity":
        citation = graph.citation_for(node)
        return {citation} if citation else set()
    if kind == "feature":  # a feature typical of one or two entities points to their sections
        holders = [u for u, _, key in graph.graph.in_edges(node, keys=True) if key == "has_feature"]
        if len(holders) <= _DISTINCTIVE:
            return {c for c in (graph.citation(h) for h in holders) if c}
    return set()


def _asks(word: str) -> bool:
    return (
        word in STOPWORDS
        or word in ASKING
        or word in FILLER
        or word in GENERIC
        or word in MARKER_WORDS
    )


def coverage(items: list[Concept], hits: list[Hit], kb: KnowledgeBase) -> list[float]:
    """For each hit, the share of the concepts' weight it covers (1.0 when there are none)."""
    total = sum(c.weight for c in items)
    if not total or not hits:
        return [1.0] * len(hits)
    ids = [h.chunk_id for h in hits]
    present = kb.contains([t for c in items for t in c.terms], ids)
    out = []
    for hit in hits:
        got = 0.0
        for c in items:
            if hit.citation in c.sections:
                got += c.weight
            elif any(hit.chunk_id in present[t] for t in c.terms):
                got += c.weight * (MENTION_SHARE if c.sections else 1.0)
        out.append(got / total)
    return out


def rank(items: list[Concept], hits: list[Hit], kb: KnowledgeBase) -> list[Hit]:
    """Hits ordered by coverage (rounded to 0.01), then sections about a named concept first
    (the entity's own section, a section of an entity showing the named feature), then the
    search order; each hit's ``coverage`` is set to its concept coverage."""
    shares = coverage(items, hits, kb)
    about = [any(h.citation in c.sections for c in items) for h in hits]
    ranked = sorted(range(len(hits)), key=lambda i: (-round(shares[i], 2), not about[i], i))
    return [hits[i].model_copy(update={"coverage": shares[i]}) for i in ranked]
