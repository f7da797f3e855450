"""Text helpers for lookup answers: sentences, query focus terms, snippets that keep what was
asked for (a marker, a number), and the published source of each cited section."""

from __future__ import annotations

import re

from slidescout.tools.knowledge.corpus import section_source, without_source
from slidescout.tools.knowledge.graph import normalize_name
from slidescout.tools.knowledge.index import STOPWORDS, KnowledgeBase
from slidescout.tools.knowledge.models import Hit

# Words that ask about a subject without naming it ("what do LUAD look like").
FILLER: frozenset[str] = frozenset(
    "feature features hallmark hallmarks histology histological histologic morphology morphologic "
    "morphological appearance look looks like characteristic characteristics typical key main "
    "diagnosis diagnostic criteria definition define defined defining defines".split()
)
# Words that say what kind of answer is wanted, not what it is about: a passage need not
# contain them to answer the question (the coverage check leaves them out).
ASKING: frozenset[str] = frozenset(
    "meaning means mean significance role use used value values alteration alterations change "
    "changes finding findings versus vs difference differences differ differs distinguish "
    "distinguishing distinguished tell apart compare comparison compared many much cutoff "
    "cutoffs cut off threshold thresholds grade grades grading graded score scores scoring "
    "pattern patterns per count counts number numbers percent percentage proportion minimum "
    "maximum required needed status state type types".split()
)
# Words that name no particular entity: a match may leave them uncovered.
GENERIC: frozenset[str] = frozenset(
    "tumor tumors cancer cancers carcinoma carcinomas neoplasm neoplasms lesion lesions type types "
    "primary malignant malignancy disease diseases entity entities cell cells".split()
)
MARKER_WORDS: frozenset[str] = frozenset(
    "marker markers ihc immunohistochemistry immunohistochemical immunoprofile immunophenotype "
    "stain stains staining immunostain immunostains immunostaining immunostained antibody "
    "antibodies panel positive negative "
    "expression expressed express expresses positivity used useful helpful".split()
)
# The question asks for numbers: thresholds, counts, scores.
_WANTS_NUMBERS = re.compile(
    r"\b(?:cut-?offs?|thresholds?|how\s+many|counts?|numbers?|scores?|scoring|percent\w*|size|"
    r"mm2?|hpf|per|grade|grading|criteria|ratio|index)\b"
)
_NUMBER = re.compile(r"\d")


def plain(text: str) -> str:
    """A chunk's text without its Source line and Markdown bold, on one line."""
    return " ".join(without_source(text).replace("**", "").split())


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: max(limit - 3, 0)].rstrip() + "..."


def stem(word: str) -> str:
    """A crude stem for overlap tests: common endings dropped, first 4 letters kept."""
    if len(word) > 5:
        word = re.sub(r"(?:ing|ed|es|s|al|ic)$", "", word)
    return word[:4] if word.isalpha() else word


def content_words(text: str) -> list[str]:
    """Normalised words of a question minus stopwords and words that only ask ('features of')."""
    return [w for w in normalize_name(text).split() if w not in STOPWORDS and w not in FILLER]


def focus_terms(query: str, marker_words: set[str] | None = None) -> dict[str, float]:
    """Stemmed query terms with weights: markers, codes and numbers (written with digits or in
    capitals, or known marker names) weigh 3, other content words 1, generic words nothing."""
    capitals = {normalize_name(w) for w in re.findall(r"\b[A-Z][A-Z0-9-]{1,}\b", query)}
    terms: dict[str, float] = {}
    for word in content_words(query):
        if word in GENERIC or word in MARKER_WORDS - {"ihc"}:
            continue
        heavy = (
            _NUMBER.search(word)
            or word in capitals
            or (marker_words is not None and word in marker_words)
        )
        key = stem(word)
        terms[key] = max(terms.get(key, 0.0), 3.0 if heavy else 1.0)
    return terms


def wants_numbers(query: str) -> bool:
    return bool(_WANTS_NUMBERS.search(query.lower()))


def sentences(text: str) -> list[str]:
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


def snippet(
    text: str,
    terms: dict[str, float],
    budget: int,
    *,
    numbers: bool = False,
    phrase: str = "",
) -> str:
    """The sentences that carry the most of the asked-for terms, kept in their original order.

    A sentence scores the weights of the terms it holds, plus half of what its paragraph's
    bold lead-in holds ("**Mimics not to count.**" speaks for the sentences under it); holding
    numbers counts when numbers are asked for. With ``phrase``, only the paragraphs that name
    the phrase are quoted (when any does)."""
    parts: list[str] = []
    scores: list[float] = []
    naming: list[bool] = []
    for paragraph in re.split(r"\n\s*\n", without_source(text)):
        lead = re.match(r"\s*\*\*(.+?)\*\*", paragraph)
        lead_score = _score(lead.group(1), terms) if lead else 0.0
        flat = plain(paragraph)
        names = bool(phrase) and f" {phrase} " in f" {normalize_name(flat)} "
        for sentence in sentences(flat):
            score = _score(sentence, terms) + 0.5 * lead_score
            if numbers and _NUMBER.search(sentence):
                score += 1.0 + 0.25 * min(len(re.findall(r"\d+", sentence)), 8)
            parts.append(sentence)
            scores.append(score)
            naming.append(names)
    whole = " ".join(parts)
    if len(whole) <= budget:
        return whole
    chosen = list(range(len(parts)))
    if any(naming):
        chosen = [i for i in chosen if naming[i]]  # only what names the phrase
    keep: list[int] = []
    used = 0
    for i in sorted(chosen, key=lambda i: (-scores[i], i)):
        size = len(parts[i]) + 5
        if used + size > budget and keep:
            continue
        keep.append(i)
        used += size
        if used >= budget:
            break
    return clip(" ... ".join(parts[i] for i in sorted(keep)), budget)


def _score(sentence: str, terms: dict[str, float]) -> float:
    words = {stem(w) for w in normalize_name(sentence).split()}
    return sum(weight for term, weight in terms.items() if term in words)


def references(kb: KnowledgeBase, citations: list[str]) -> dict[str, str]:
    """The published source named by each cited section (citation -> reference)."""
    out: dict[str, str] = {}
    for citation in dict.fromkeys(citations):
        source, _, section = citation.partition(" § ")
        chunks = kb.section(source, section) if section else []
        out[citation] = section_source(chunks[0].text) if chunks else ""
    return out


def with_references(kb: KnowledgeBase, hits: list[Hit]) -> list[Hit]:
    refs = references(kb, [h.citation for h in hits])
    return [h.model_copy(update={"reference": refs.get(h.citation, "")}) for h in hits]


def sources_line(citations: list[str], refs: dict[str, str]) -> str:
    """'Sources: file § section (reference); ...' with each reference said once."""
    parts: list[str] = []
    said: set[str] = set()
    for citation in dict.fromkeys(citations):
        ref = refs.get(citation, "")
        if ref and ref not in said:
            said.add(ref)
            parts.append(f"{citation} ({ref})")
        else:
            parts.append(citation)
    return "Sources: " + "; ".join(parts) if parts else ""


def numbered_sources(hits: list[Hit]) -> str:
    """'Sources: [1, 3] WHO ...; [2] notes.md': each published reference once, with its hits; a
    passage whose section names no reference (the user's own files) by its file name."""
    groups: dict[str, list[int]] = {}
    for number, hit in enumerate(hits, start=1):
        groups.setdefault(hit.reference or f"{hit.source} (your file)", []).append(number)
    if not groups:
        return ""
    return "Sources: " + "; ".join(
        f"[{', '.join(map(str, numbers))}] {ref}" for ref, numbers in groups.items()
    )
