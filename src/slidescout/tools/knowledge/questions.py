"""Question shapes for ``lookup`` and matching names in them to concept-graph nodes.

A name matches a node only when the node's name covers every distinguishing word of it
("follicular thyroid carcinoma" is not "thyroid carcinoma"); in a comparison, a side that names
only a histotype takes the organ of the other side (organ words outrank histotype words).
"""

from __future__ import annotations

import difflib
import re
from functools import lru_cache
from itertools import pairwise

from slidescout.tools.knowledge.corpus import markdown_chunks, starter_files
from slidescout.tools.knowledge.graph import ConceptGraph, normalize_name
from slidescout.tools.knowledge.terms import STOPWORDS
from slidescout.tools.knowledge.text import (
    CONNECTORS,
    FILLER,
    GENERIC,
    MARKER_WORDS,
    PLAIN_WORDS,
    content_words,
)

SUBJECT_KINDS = ("entity", "organ", "gleason_pattern")

# --- question shapes (matched on a lower-cased, whitespace-collapsed query)
FEATURES_OF = re.compile(
    r"\b(?:features?|hallmarks?|histology|histologic\s+features?|morphology|characteristics?|criteria|"
    r"findings|appearance|look\s+like)\s+(?:of|for|in)\s+(.+)$"
)
WHAT_IS = re.compile(r"^(?:what|who)\s+(?:is|are)\s+(?:an?\s+|the\s+)?(.+)$")
MARKERS = re.compile(
    r"\b(?:markers?|ihc|immunohistochem\w*|immunoprofile|immunophenotype|immunostain\w*|stains?|"
    r"staining|antibod(?:y|ies))\b"
)
MARKERS_OF = re.compile(
    r"\b(?:markers?|ihc|immunohistochem\w*|immunostains?|stains?|staining)\s+(?:of|in|for|on)\s+(.+)$"
)
DISTINGUISH = [
    re.compile(
        r"\b(?:distinguish(?:es|ing)?|differentiat(?:e|es|ing)|tell\s+apart|separate|discriminate)\s+(.+?)\s+(?:from|and|vs\.?|versus)\s+(.+)$"
    ),
    re.compile(r"\bdifferences?\s+between\s+(.+?)\s+and\s+(.+)$"),
    re.compile(r"\bcompar(?:e|ing)\s+(.+?)\s+(?:and|with|to|vs\.?|versus)\s+(.+)$"),
    re.compile(r"^(.+?)\s+(?:vs\.?|versus)\s+(.+)$"),
    re.compile(r"\btell\s+(.+?)\s+(?:from|and)\s+(.+?)(?:\s+apart)?$"),
]
WITH_FEATURE = [
    re.compile(
        r"\b(?:which|what)\s+(?:\w+\s+){0,2}?(?:entities|entity|tumou?rs?|cancers?|carcinomas?|tissues?|neoplasms?|"
        r"lesions?|diagnos[ie]s|types?|patterns?|organs?)\s+(?:have|has|show|shows|display|displays|contain|contains|"
        r"with|feature|features|are\s+associated\s+with|exhibit|exhibits|are|is|express|expresses)\s+(.+)$"
    ),
    re.compile(
        r"^(?:entities|tumou?rs|cancers|tissues|patterns)\s+(?:with|showing|having)\s+(?:the\s+)?(?:feature\s+)?(.+)$"
    ),
    re.compile(
        r"\bwhere\s+(?:are|is|do|does)\s+(?:you\s+)?(?:see\s+|find\s+)?(.+?)\s*(?:seen|found|occur|present)?$"
    ),
]
COMPARISON_WORDS = re.compile(r"\b(?:vs|versus|from|distinguish\w*|differen\w*|compar\w*|or|and)\b")
IN_ORGAN = re.compile(
    r"\b(?:tumou?rs|cancers|entities|neoplasms|carcinomas)\s+(?:that\s+)?(?:arise\s+|arising\s+|occur\s+|occurring\s+|are\s+found\s+)?(?:of|in|from)\s+(?:the\s+)?(.+)$"
)
# "comedonecrosis in a prostate biopsy: which Gleason pattern?" (the feature first)
FEATURE_THEN_WHICH = re.compile(
    r"^(.+?)[\s,;:-]+(?:which|what)\s+(gleason\s+patterns?|patterns?|entit(?:y|ies)|tumou?rs?|"
    r"cancers?|tissues?)(?:\s+(?:is|are|has|have|shows?))?(?:\s+(?:it|this|that))?$"
)
NOT_TUMOURS = frozenset({"stroma", "stromas", "soma", "coma"})
# Head words of a tumour name besides '-oma' words and CANCER_WORDS.
TUMOUR_HEADS = frozenset(
    "tumor tumors tumour tumours neoplasm neoplasms leukemia leukaemia nevus naevus".split()
)
CANCER_WORDS = frozenset(
    "tumor tumors cancer cancers carcinoma carcinomas neoplasm neoplasms".split()
)
# Names of whole families of tumours: a modifier before them is what names the tumour
# ("Kaposi sarcoma", "follicular lymphoma"), so it is never dropped to match the family's entry.
FAMILY_HEADS = CANCER_WORDS | frozenset(
    "adenocarcinoma adenocarcinomas sarcoma sarcomas lymphoma lymphomas melanoma melanomas "
    "glioma gliomas adenoma adenomas".split()
)


def marker_subject(q: str, graph: ConceptGraph) -> str | None:
    """The entity a marker question is about: the whole question without marker words, else
    what follows 'markers in/of' ('basal cell markers in prostate cancer': the words before
    'markers' say which markers, not which tumour)."""
    node = subject_node(strip_markers(q), graph)
    if node is None:
        m = MARKERS_OF.search(q)
        node = subject_node(m.group(1), graph) if m else None
    return node


def strip_markers(q: str) -> str:
    return " ".join(w for w in normalize_name(q).split() if w not in MARKER_WORDS)


def subject_node(text: str, graph: ConceptGraph) -> str | None:
    return match(text, graph, SUBJECT_KINDS)


def has_content(node: str, graph: ConceptGraph) -> bool:
    profile = graph.profile_of(node)
    return bool(profile.features or profile.citation)


def match(text: str, graph: ConceptGraph, kinds: tuple[str, ...]) -> str | None:
    """A node whose name covers every distinguishing word of ``text``. Words left over may only
    be generic ('tumor', 'cell'), question words, marker words or the names of features asked
    about ('GATA3 in urothelial carcinoma'); a close misspelling of a whole name also counts."""
    text = re.sub(r"^(?:the|a|an)\s+", "", text.strip(" ?.!,;:"))
    words = content_words(text)
    if not words:
        return None
    joined = " ".join(words)
    allowed: set[str] = {*GENERIC, *FILLER, *MARKER_WORDS}
    if "feature" not in kinds:
        for feature in graph.mentions(joined, kinds=("feature",)):
            for name in graph.names(feature):
                allowed.update(name.split())
    candidates = [graph.resolve(text, kinds=kinds), graph.resolve(joined, kinds=kinds)]
    candidates += graph.mentions(text, kinds=kinds, strict_abbreviations=False)
    for node in dict.fromkeys(c for c in candidates if c):
        if _covers(graph.names(node), words, allowed):
            return node
    core = [w for w in words if w not in allowed]
    if core and core != words:  # 'cholangiocarinoma stains': the name alone, misspelt
        close = graph.resolve(" ".join(core), kinds=kinds)
        if close and _covers(graph.names(close), core, allowed):
            return close
    return None


def _covers(names: set[str], words: list[str], allowed: set[str]) -> bool:
    joined = " ".join(words)
    for name in {" ".join(content_words(n)) for n in names} - {""}:
        if name == joined:
            return True
        if f" {name} " in f" {joined} ":
            named = set(name.split())
            if all(w in named or w in allowed for w in words):
                return True
        elif _misspelled(joined, name):
            return True
    return False


def _misspelled(text: str, name: str) -> bool:
    """The same words as ``name``, each spelled closely enough ('adenocarcinoma of the lugn')."""
    a, b = text.split(), name.split()
    if len(a) != len(b) or difflib.SequenceMatcher(None, text, name).ratio() < 0.86:
        return False
    return all(
        difflib.SequenceMatcher(None, x, y).ratio() >= 0.75 for x, y in zip(a, b, strict=True)
    )


def pair(a_text: str, b_text: str, graph: ConceptGraph) -> tuple[str | None, str | None]:
    """Both sides of a comparison. A side that names only a histotype ('squamous cell carcinoma')
    takes the organ of the other side ('lung adenocarcinoma'): organ words outrank histotype."""
    a, b = subject_node(a_text, graph), subject_node(b_text, graph)
    if a and not b:
        b = in_organs(b_text, graph.organs_of(a), graph)
    elif b and not a:
        a = in_organs(a_text, graph.organs_of(b), graph)
    return a, b


def in_organs(text: str, organs: list[str], graph: ConceptGraph) -> str | None:
    words = [w for w in content_words(text) if w not in GENERIC or w in ("cell", "carcinoma")]
    phrase = " ".join(words)
    if not phrase:
        return None
    found = [
        entity
        for organ in organs
        for entity in graph.entities_of_organ(organ)
        if any(f" {phrase} " in f" {name} " for name in graph.names(entity))
    ]
    found = list(dict.fromkeys(found))
    return min(found, key=lambda e: len(graph.label(e))) if found else None


def named_subjects(q: str) -> list[str]:
    """The tumour names a question mentions ('ependymoma', 'follicular lymphoma', 'merkel cell
    carcinoma'): a tumour head word with up to three modifiers before it. A head alone that
    names no particular tumour ('carcinoma', 'tumor') is left out."""
    words = normalize_name(q).split()
    found: list[str] = []
    for i, word in enumerate(words):
        if not _tumour_head(word):
            continue
        start = i
        while start > 0 and i - start < 3 and _modifier(words[start - 1]):
            start -= 1
        phrase = words[start : i + 1]
        if len(phrase) == 1 and word in GENERIC | TUMOUR_HEADS:
            continue
        found.append(" ".join(phrase))
    return list(dict.fromkeys(found))


def _tumour_head(word: str) -> bool:
    if word in CANCER_WORDS or word in TUMOUR_HEADS:
        return True
    return word.endswith(("oma", "omas")) and word not in NOT_TUMOURS and len(word) > 4


_NOT_MODIFIERS = (
    STOPWORDS
    | FILLER
    | MARKER_WORDS
    | PLAIN_WORDS
    | CONNECTORS
    | {"malignant", "benign", "primary", "vs", "versus"}
)


def _modifier(word: str) -> bool:
    return word.isalpha() and word not in _NOT_MODIFIERS and not _tumour_head(word)


def known_after_context(subject: str, graph: ConceptGraph) -> str | None:
    """The entity a tumour name means once leading words that only give context are set aside
    ('anterior mediastinal thymoma', 'asbestos mesothelioma'), else None. A leading word is
    context when the entity's own section uses it (or another form of it: 'mediastinal',
    'mediastinum') and the corpus never puts it directly before a tumour word (where it would
    name a tumour: 'follicular carcinoma'), or when it names an organ of that entity. What is left must name the entity itself, not a family of tumours
    ('Kaposi sarcoma' is not the sarcoma entry)."""
    words = normalize_name(subject).split()
    for start in range(1, len(words)):
        rest = words[start:]
        if len(rest) == 1 and rest[0] in FAMILY_HEADS:
            return None
        node = subject_node(" ".join(rest), graph)
        if node is None or graph.kind(node) != "entity":
            continue
        citation = graph.citation_for(node) or ""
        own = _section_words().get(citation, frozenset())
        organs = set(graph.organs_of(node))
        if all(_context(w, own, organs, graph) for w in words[:start]):
            return node
    return None


def _context(word: str, own: frozenset[str], organs: set[str], graph: ConceptGraph) -> bool:
    if word in STOPWORDS or word in PLAIN_WORDS or word in CONNECTORS:
        return True
    if organs & set(graph.mentions(word, kinds=("organ",))):
        return True
    if word in own:
        return word not in _name_modifiers()
    # another form of a word of the section ('mediastinal' where it says 'mediastinum')
    need = max(7, len(word) - 3)
    return len(word) > need and any(
        w[:need] == word[:need] and w not in _name_modifiers() for w in own
    )


@lru_cache(maxsize=1)
def _section_words() -> dict[str, frozenset[str]]:
    """The words of each starter-corpus section, by citation ("file § heading")."""
    out: dict[str, frozenset[str]] = {}
    for path in starter_files():
        _, chunks = markdown_chunks(path.read_text(encoding="utf-8"), path.stem)
        for chunk in chunks:
            key = f"{path.name} § {chunk.section}"
            out[key] = out.get(key, frozenset()) | frozenset(normalize_name(chunk.text).split())
    return out


@lru_cache(maxsize=1)
def _name_modifiers() -> frozenset[str]:
    """Words the starter corpus puts directly before a tumour word ('follicular carcinoma')."""
    found: set[str] = set()
    for path in starter_files():
        words = normalize_name(path.read_text(encoding="utf-8")).split()
        found.update(a for a, b in pairwise(words) if _tumour_head(b))
    return frozenset(found)
