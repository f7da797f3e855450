"""The text of a lookup answer: reference excerpts chosen by the question's rare terms, the
"how to tell apart" sentences of a comparison, and the Sources line.

A snippet keeps the sentences that carry the most of the question's weight: each question word
weighs its inverse document frequency in the index (so 'Hans' outweighs 'lymphoma'), markers,
codes and numbers weigh three times as much, and words that only name the subject (the entity
or organ the question is about) weigh half, since every sentence of its section is about it.
"""

from __future__ import annotations

import re
from typing import Any

from slidescout.tools.knowledge.graph import AMBIGUOUS_ABBREVIATIONS, ConceptGraph, normalize_name
from slidescout.tools.knowledge.index import KnowledgeBase
from slidescout.tools.knowledge.models import Hit
from slidescout.tools.knowledge.questions import MARKERS
from slidescout.tools.knowledge.text import (
    clip,
    content_words,
    focus_terms,
    numbered_sources,
    plain,
    sentences,
    snippet,
    sources_line,
    stem,
    wants_numbers,
)

MAX_TEXT_CHARS = 1500
_SUBJECT_WEIGHT = 0.5
_MARKER_QUESTION_WEIGHT = 6.0  # 'markers of X': the IHC paragraph, as much as a rare word


def section_hits(kb: KnowledgeBase, citations: list[str]) -> list[Hit]:
    hits: list[Hit] = []
    for citation in citations:
        source, _, section = citation.partition(" § ")
        hits.extend(kb.section(source, section))
    return hits


def contrast(hits: list[Hit], data: dict[str, Any], graph: ConceptGraph) -> str:
    """Sentences of each entity's section that name the other one (the corpus's own
    "how to tell apart" advice)."""
    a, b = data["a"], data["b"]
    found: list[str] = []
    for node, other in ((a, b), (b, a)):
        citation = graph.citation_for(node)
        names = {normalize_name(n) for n in graph.aliases(other)}
        names = {n for n in names if len(n) > 2 and n not in AMBIGUOUS_ABBREVIATIONS}
        text = " ".join(plain(h.text) for h in hits if h.citation == citation)
        for sentence in sentences(text):
            padded = f" {normalize_name(sentence)} "
            if any(f" {n} " in padded for n in names):
                found.append(re.sub(r"^[A-Z]\w*(?: \w+){0,2}\. ", "", sentence.strip()))
    return " ".join(dict.fromkeys(found))


def query_weights(query: str, graph: ConceptGraph, kb: KnowledgeBase) -> dict[str, float]:
    """Stemmed question words with their snippet weights (see the module docstring)."""
    markers = {
        w
        for node in graph.mentions(query, kinds=("feature",))
        if graph.graph.nodes[node].get("category") in ("ihc", "molecular")
        for name in graph.names(node)
        for w in name.split()
    }
    base = focus_terms(query, markers)
    subject = {
        w
        for node in graph.mentions(query, kinds=("entity", "organ"))
        for w in _subject_words(node, graph)
    }
    words = [w for w in content_words(query) if stem(w) in base]
    spelled = {w: kb.correct(w) for w in words}
    idf = kb.term_weights(list(spelled.values()))
    out: dict[str, float] = {}
    for word in words:
        key = stem(word)
        factor = _SUBJECT_WEIGHT if word in subject and word not in markers else base[key]
        out[key] = max(out.get(key, 0.0), factor * max(idf[spelled[word]], 0.1))
    if MARKERS.search(query.lower()):
        out["ihc"] = _MARKER_QUESTION_WEIGHT
    return out


def _subject_words(node: str, graph: ConceptGraph) -> set[str]:
    """Words that name an entity or organ as a whole (label, code, one-word abbreviations such
    as 'dlbcl', an organ's one-word names such as 'arterial'): every sentence of its section is
    about them. A subtype's own words ('synovial'
    in 'synovial sarcoma') are not among them."""
    data = graph.graph.nodes[node]
    words = set(normalize_name(str(data["label"])).split())
    words |= set(normalize_name(str(data.get("code") or "")).split())
    one_word = {n for n in graph.names(node) if " " not in n}
    words |= one_word if graph.kind(node) == "organ" else {n for n in one_word if len(n) <= 6}
    return words


def finish(
    query: str,
    text: str,
    hits: list[Hit],
    citations: list[str],
    refs: dict[str, str],
    graph: ConceptGraph,
    kb: KnowledgeBase,
    focus: str = "",
    limit: int = 600,
) -> str:
    """Append reference excerpts (sentences comparing the two, or the sentences carrying what was
    asked for) and the sources with their published references."""
    sources = sources_line(citations, refs)
    room = MAX_TEXT_CHARS - len(text) - len(sources) - 4
    if focus and room > 160:
        text = f"{text}\nHow to tell apart: {clip(focus, room - 20)}"
    elif hits and room > 160:
        terms = query_weights(query, graph, kb)
        numbers = wants_numbers(query)
        if len(hits) > 1 and room > 700 and "markers" not in text.split("\n")[0]:
            per = (room - 20) // 2
            excerpt = " | ".join(snippet(h.text, terms, per, numbers=numbers) for h in hits[:2])
        else:
            excerpt = snippet(hits[0].text, terms, min(room - 12, limit), numbers=numbers)
        text = f"{text}\nReference: {excerpt}"
    return clip(f"{text}\n{sources}" if sources else text, MAX_TEXT_CHARS)


def format_hits(
    query: str,
    hits: list[Hit],
    graph: ConceptGraph,
    kb: KnowledgeBase,
    *,
    phrase: str = "",
    header: str = "",
) -> str:
    """Numbered passages, the best one with the most room, and the Sources line."""
    terms = query_weights(query, graph, kb)
    numbers = wants_numbers(query)
    header = header or f'References for "{clip(query, 80)}":'
    sources = clip(numbered_sources(hits), 400)
    room = MAX_TEXT_CHARS - len(header) - len(sources) - 8
    first = min(max(room * 3 // (len(hits) + 2), 560), room)  # the best passage gets more room
    share = (room - first) // max(len(hits) - 1, 1)
    parts = [header]
    for number, hit in enumerate(hits, start=1):
        budget = first if number == 1 else share
        title = f"[{number}] {hit.citation}"
        body = snippet(
            hit.text, terms, max(budget - len(title) - 2, 80), numbers=numbers, phrase=phrase
        )
        parts.append(f"{title}\n{body}")
    parts.append(sources)
    return clip("\n".join(parts), MAX_TEXT_CHARS)
