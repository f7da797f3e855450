"""Concept graph: organs -> entities -> histological features, and Gleason -> ISUP.

Built in networkx from ``corpus/concepts.yaml``. Node ids are ``organ:KEY``, ``entity:KEY``,
``feature:KEY``, ``gleason_pattern:N``, ``gleason:P+S`` (a primary+secondary pair),
``gleason_score:T`` and ``isup:G``. Feature nodes are shared between entities, so the graph
answers "features of X", "what distinguishes X from Y" and "which entities show feature F".
Names are matched forgivingly: case, punctuation, British spellings, TCGA codes and common
abbreviations (LUAD, ccRCC, GBM), simple plurals, and close misspellings.
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from functools import lru_cache
from pathlib import Path
from typing import Any

import networkx as nx
from pydantic import BaseModel

from slidescout.errors import DatasetError
from slidescout.tools.knowledge.corpus import starter_corpus_dir
from slidescout.tools.knowledge.gleason import (
    GRADE_GROUP_TEXT,
    INVALID_PAIR_NOTE,
    GleasonGrade,
    add_gleason_nodes,
    require_node,
)

CONCEPTS_FILE = "concepts.yaml"

# Abbreviations that are also ordinary words: matched inside free text only when written in capitals.
AMBIGUOUS_ABBREVIATIONS = frozenset(
    {"read", "acc", "ov", "ups", "idc", "ilc", "eac", "hcc", "crc", "cns", "fat", "iris"}
)
_SPELLING = (
    ("tumour", "tumor"),
    ("oesophag", "esophag"),
    ("phaeo", "pheo"),
    ("haem", "hem"),
    ("oedema", "edema"),
    ("anaemi", "anemi"),
    ("colour", "color"),
)
_KIND_PRIORITY = {"entity": 0, "gleason_pattern": 1, "organ": 2, "feature": 3}
_CATEGORY_ORDER = (
    "architecture",
    "stroma",
    "necrosis",
    "cytology",
    "normal structure",
    "ihc",
    "molecular",
)


def normalize_name(text: str) -> str:
    """Lower case, accents and punctuation removed, British spellings made American."""
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii").lower()
    text = text.replace("&", " and ")
    for old, new in _SPELLING:
        text = text.replace(old, new)
    text = re.sub(r"[^a-z0-9]+", " ", text)
    return " ".join(text.split())


def spelling_variants(text: str) -> list[str]:
    """``text`` (normalised, American) and its British spelling when that differs ('tumor' ->
    'tumour'), for searching text that was not normalised."""
    british = text
    for old, new in _SPELLING:
        british = british.replace(new, old)
    return [text] if british == text else [text, british]


def _variants(alias: str) -> set[str]:
    """The alias plus simple singular/plural forms of its last word."""
    out = {alias}
    head, _, last = alias.rpartition(" ")
    prefix = f"{head} " if head else ""
    if len(last) > 3:
        if last.endswith("ies"):
            out.add(prefix + last[:-3] + "y")
        elif last.endswith("s") and not last.endswith("ss"):
            out.add(prefix + last[:-1])
        elif last.endswith("y"):
            out.add(prefix + last[:-1] + "ies")
        elif not last.endswith("s"):
            out.add(prefix + last + "s")
    return out


class Profile(BaseModel):
    """What the graph knows about one entity, organ or Gleason pattern."""

    node: str
    label: str
    kind: str
    code: str | None = None
    organs: list[str] = []
    features: dict[str, list[str]] = {}
    differentials: list[str] = []
    entities: list[str] = []  # for an organ: what arises there
    citation: str | None = None
    who_name: str | None = None  # the current WHO name when the label is an older (TCGA) one


class Comparison(BaseModel):
    a: str
    b: str
    only_a: list[str]
    only_b: list[str]
    shared: list[str]
    listed_as_differential: bool
    citations: list[str]


class ConceptGraph:
    """The concept graph plus a name index. Build with :meth:`load` (or :func:`load_graph`)."""

    def __init__(self, graph: nx.MultiDiGraph) -> None:
        self.graph = graph
        self._index: dict[str, set[str]] = {}
        for node, data in graph.nodes(data=True):
            for alias in data.get("aliases", ()):
                norm = normalize_name(alias)
                if not norm:
                    continue
                for form in _variants(norm) if data["kind"] != "gleason" else {norm}:
                    self._index.setdefault(form, set()).add(node)
        self._max_words = max((len(a.split()) for a in self._index), default=1)

    # ------------------------------------------------------------------ building

    @classmethod
    def load(cls, path: str | Path | None = None) -> ConceptGraph:
        """Build the graph from a concepts YAML file (default: the one shipped in the corpus)."""
        import yaml

        file = Path(path) if path is not None else starter_corpus_dir() / CONCEPTS_FILE
        try:
            data = yaml.safe_load(file.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise DatasetError(f"concept graph file not found: {file}") from exc
        except yaml.YAMLError as exc:
            raise DatasetError(f"concept graph file {file} is not valid YAML: {exc}") from exc
        if not isinstance(data, dict):
            raise DatasetError(
                f"concept graph file {file} must be a mapping with features, organs and entities"
            )
        return cls(build_graph(data, str(file)))

    # ------------------------------------------------------------------ names

    def label(self, node: str) -> str:
        return str(self.graph.nodes[node]["label"])

    def short(self, node: str) -> str:
        """Label with code, e.g. ``Lung adenocarcinoma (LUAD)``."""
        data = self.graph.nodes[node]
        return f"{data['label']} ({data['code']})" if data.get("code") else str(data["label"])

    def kind(self, node: str) -> str:
        return str(self.graph.nodes[node]["kind"])

    def citation(self, node: str) -> str | None:
        return self.graph.nodes[node].get("citation")

    def aliases(self, node: str) -> list[str]:
        return list(self.graph.nodes[node].get("aliases", ()))

    def names(self, node: str) -> set[str]:
        """The normalised names of a node (aliases, codes and their simple plural forms)."""
        out: set[str] = set()
        for alias in self.aliases(node):
            norm = normalize_name(alias)
            if norm:
                out |= _variants(norm) if self.kind(node) != "gleason" else {norm}
        return out

    def organs_of(self, node: str) -> list[str]:
        """Organ nodes of an entity (the organ itself for an organ node)."""
        if self.kind(node) == "organ":
            return [node]
        return self._sources(node, "has_entity")

    def entities_of_organ(self, organ: str) -> list[str]:
        """Entity nodes (cancers and normal tissue) of an organ node."""
        return self._targets(organ, "has_entity")

    def nodes(self, kind: str) -> list[str]:
        return [n for n, d in self.graph.nodes(data=True) if d["kind"] == kind]

    def _pick(
        self, candidates: set[str], kinds: tuple[str, ...] | None, name: str = ""
    ) -> str | None:
        """The best node for a name shared by several: by kind, then the most specific (the
        node whose own label is closest to the name), never by alphabet alone."""
        pool = [c for c in candidates if kinds is None or self.kind(c) in kinds]
        if not pool:
            return None

        def key(node: str) -> tuple[int, int, float, str]:
            label = normalize_name(self.label(node))
            closeness = difflib.SequenceMatcher(None, name, label).ratio() if name else 0.0
            return (_KIND_PRIORITY.get(self.kind(node), 9), label != name, -closeness, node)

        return min(pool, key=key)

    def resolve(self, name: str, kinds: tuple[str, ...] | None = None) -> str | None:
        """The node a name refers to, or None. Tries the exact (normalised) name, then a close
        spelling, then the first name mentioned inside it."""
        norm = normalize_name(name)
        norm = re.sub(r"^(?:the|a|an)\s+", "", norm)
        if not norm:
            return None
        hit = self._pick(self._index.get(norm, set()), kinds, norm)
        if hit:
            return hit
        pool = [a for a, ns in self._index.items() if self._pick(ns, kinds)]
        close = difflib.get_close_matches(norm, pool, n=1, cutoff=0.86)
        if close:
            return self._pick(self._index[close[0]], kinds, close[0])
        found = self.mentions(name, kinds=kinds, strict_abbreviations=False)
        return found[0] if found else None

    def mentions(
        self, text: str, kinds: tuple[str, ...] | None = None, *, strict_abbreviations: bool = True
    ) -> list[str]:
        """Nodes named in free text, in order of appearance, longest names first, no repeats."""
        words = normalize_name(text).split()
        found: list[str] = []
        i = 0
        while i < len(words):
            for size in range(min(self._max_words, len(words) - i), 0, -1):
                phrase = " ".join(words[i : i + size])
                candidates = self._index.get(phrase)
                if not candidates:
                    continue
                if (
                    strict_abbreviations
                    and phrase in AMBIGUOUS_ABBREVIATIONS
                    and not re.search(rf"\b{re.escape(phrase.upper())}\b", text)
                ):
                    continue
                node = self._pick(candidates, kinds, phrase)
                if node is None:
                    continue
                if node not in found:
                    found.append(node)
                i += size
                break
            else:
                i += 1
        return found

    # ------------------------------------------------------------------ questions

    def _targets(self, node: str, rel: str) -> list[str]:
        return [v for _, v, key in self.graph.out_edges(node, keys=True) if key == rel]

    def _sources(self, node: str, rel: str) -> list[str]:
        return [u for u, _, key in self.graph.in_edges(node, keys=True) if key == rel]

    def feature_nodes(self, node: str) -> list[str]:
        """Feature nodes of an entity or Gleason pattern; for an organ, of its normal tissue."""
        if self.kind(node) == "organ":
            normal = [
                e
                for e in self._targets(node, "has_entity")
                if self.graph.nodes[e].get("entity_kind") == "normal"
            ]
            return [f for e in normal for f in self._targets(e, "has_feature")]
        return self._targets(node, "has_feature")

    def profile(self, name: str) -> Profile | None:
        """Features (grouped by category), organs, differentials and citation of a named node."""
        node = self.resolve(name, kinds=("entity", "organ", "gleason_pattern"))
        return self.profile_of(node) if node else None

    def profile_of(self, node: str) -> Profile:
        data = self.graph.nodes[node]
        grouped: dict[str, list[str]] = {}
        for feature in self.feature_nodes(node):
            category = self.graph.nodes[feature]["category"]
            grouped.setdefault(category, []).append(self.label(feature))
        ordered = {c: grouped[c] for c in _CATEGORY_ORDER if c in grouped}
        ordered.update({c: v for c, v in grouped.items() if c not in ordered})
        profile = Profile(
            node=node,
            label=data["label"],
            kind=data.get("entity_kind", data["kind"]),
            code=data.get("code"),
            features=ordered,
            citation=data.get("citation"),
            who_name=data.get("who_name"),
        )
        if data["kind"] == "entity":
            profile.organs = [self.label(o) for o in self._sources(node, "has_entity")]
            profile.differentials = [self.short(d) for d in self._targets(node, "differential")]
        elif data["kind"] == "organ":
            entities = self._targets(node, "has_entity")
            profile.entities = [self.short(e) for e in entities]
            normal = [e for e in entities if self.graph.nodes[e].get("entity_kind") == "normal"]
            if normal:
                profile.citation = self.citation(normal[0])
        elif data["kind"] == "gleason_pattern":
            profile.organs = ["Prostate"]
        return profile

    def distinguish(self, a: str, b: str) -> Comparison | None:
        """Features of A not of B, of B not of A, and shared ones (names or node ids)."""
        kinds = ("entity", "organ", "gleason_pattern")
        na = a if a in self.graph else self.resolve(a, kinds)
        nb = b if b in self.graph else self.resolve(b, kinds)
        if not na or not nb:
            return None
        fa, fb = self.feature_nodes(na), self.feature_nodes(nb)
        set_b, set_a = set(fb), set(fa)
        differential = self.graph.has_edge(na, nb, "differential") or self.graph.has_edge(
            nb, na, "differential"
        )
        citations = [c for c in (self.citation_for(na), self.citation_for(nb)) if c]
        return Comparison(
            a=self.short(na),
            b=self.short(nb),
            only_a=[self.label(f) for f in fa if f not in set_b],
            only_b=[self.label(f) for f in fb if f not in set_a],
            shared=[self.label(f) for f in fa if f in set_b],
            listed_as_differential=differential,
            citations=citations,
        )

    def citation_for(self, node: str) -> str | None:
        """The corpus section about a node (for an organ: its normal histology)."""
        return self.profile_of(node).citation if self.kind(node) == "organ" else self.citation(node)

    def entities_with(self, feature: str) -> list[str]:
        """Entities and Gleason patterns showing a feature (name or node id), labelled."""
        node = feature if feature in self.graph else self.resolve(feature, kinds=("feature",))
        if not node:
            return []
        holders = self._sources(node, "has_feature")
        order = {"gleason_pattern": 1, "entity": 0}
        holders.sort(
            key=lambda n: (
                order.get(self.kind(n), 2),
                self.graph.nodes[n].get("entity_kind", ""),
                self.label(n),
            )
        )
        return [self.short(n) for n in holders]

    def entities_in(self, organ: str) -> list[str]:
        node = organ if organ in self.graph else self.resolve(organ, kinds=("organ",))
        return [self.short(e) for e in self._targets(node, "has_entity")] if node else []

    def gleason(self, primary: int, secondary: int) -> GleasonGrade:
        """Total score and ISUP grade group of a primary+secondary pair, from the graph."""
        if (primary, secondary) == (0, 0):
            return GleasonGrade(
                primary=0, secondary=0, total=0, grade_group=0, note=GRADE_GROUP_TEXT[0]
            )
        node = f"gleason:{primary}+{secondary}"
        if node not in self.graph:
            raise ValueError(f"Gleason patterns run from 1 to 5 (got {primary}+{secondary})")
        total = int(self.graph.nodes[self._targets(node, "totals")[0]]["value"])
        groups = self._targets(node, "grade_group")
        group = int(self.graph.nodes[groups[0]]["value"]) if groups else None
        notes = []
        if group is None:
            notes.append(INVALID_PAIR_NOTE)
        elif min(primary, secondary) < 3:
            notes.append(
                "patterns 1 and 2 are not assigned on needle biopsies today; scores of 2-5 are not reported"
            )
        if total == 7 and group in (2, 3):
            other = f"{secondary}+{primary}"
            notes.append(
                f"{other}=7 is grade group {5 - group}: the primary (most extensive) pattern decides"
            )
        return GleasonGrade(
            primary=primary,
            secondary=secondary,
            total=total,
            grade_group=group,
            note="; ".join(notes),
        )

    def pairs_for_total(self, total: int) -> list[tuple[str, int | None]]:
        node = f"gleason_score:{total}"
        if node not in self.graph:
            return []
        pairs = sorted(self._sources(node, "totals"))
        out = []
        for pair in pairs:
            groups = self._targets(pair, "grade_group")
            out.append(
                (pair.split(":")[1], int(self.graph.nodes[groups[0]]["value"]) if groups else None)
            )
        return out

    def pairs_for_grade_group(self, group: int) -> list[str]:
        node = f"isup:{group}"
        if node not in self.graph:
            return []
        pairs = [p.split(":")[1] for p in self._sources(node, "grade_group")]
        return sorted(
            (p for p in pairs if min(int(p[0]), int(p[2])) >= 3),
            key=lambda p: (int(p[0]) + int(p[2]), p),
        )


def build_graph(data: dict[str, Any], origin: str = "concepts") -> nx.MultiDiGraph:
    """Turn the parsed concepts file into a networkx MultiDiGraph (edge key = relation)."""
    g = nx.MultiDiGraph()
    features = data.get("features") or {}
    organs = data.get("organs") or {}
    entities = data.get("entities") or {}
    for key, spec in features.items():
        spec = spec or {}
        g.add_node(
            f"feature:{key}",
            kind="feature",
            label=spec.get("label", key.replace("_", " ")),
            category=spec.get("category", "other"),
            aliases=[spec.get("label", key), key.replace("_", " "), *spec.get("aliases", [])],
        )
    for key, spec in organs.items():
        spec = spec or {}
        g.add_node(
            f"organ:{key}",
            kind="organ",
            label=spec.get("label", key),
            aliases=[spec.get("label", key), key.replace("_", " "), *spec.get("aliases", [])],
        )
    for key, spec in entities.items():
        node = f"entity:{key}"
        label = spec.get("label", key)
        code = spec.get("code")
        aliases = [label, key.replace("_", " "), *spec.get("aliases", [])]
        if code:
            aliases += [code, *code.split("/")]
        if spec.get("kind") == "normal":
            for organ in spec.get("organs", []):
                organ_label = (organs.get(organ) or {}).get("label", organ)
                aliases += [
                    f"normal {organ_label}",
                    f"{organ_label} normal",
                    f"normal {organ_label} tissue",
                    f"normal {organ_label} histology",
                    f"{organ_label} normal histology",
                ]
        citation = (
            f"{spec['source']} § {spec['section']}"
            if spec.get("source") and spec.get("section")
            else None
        )
        g.add_node(
            node,
            kind="entity",
            entity_kind=spec.get("kind", "cancer"),
            label=label,
            code=code,
            aliases=aliases,
            citation=citation,
            source=spec.get("source"),
            section=spec.get("section"),
            who_name=spec.get("who_name"),
        )
    for key, spec in entities.items():
        node = f"entity:{key}"
        for organ in spec.get("organs", []):
            require_node(g, f"organ:{organ}", origin, f"entity {key} names unknown organ {organ!r}")
            g.add_edge(f"organ:{organ}", node, key="has_entity")
        for feature in spec.get("features", []):
            require_node(
                g, f"feature:{feature}", origin, f"entity {key} names unknown feature {feature!r}"
            )
            g.add_edge(node, f"feature:{feature}", key="has_feature")
        for other in spec.get("differentials", []):
            require_node(
                g, f"entity:{other}", origin, f"entity {key} names unknown differential {other!r}"
            )
            g.add_edge(node, f"entity:{other}", key="differential")
    add_gleason_nodes(g, data.get("gleason_patterns") or {}, origin)
    return g


@lru_cache(maxsize=4)
def _cached(path: str | None) -> ConceptGraph:
    return ConceptGraph.load(path)


def load_graph(path: str | Path | None = None) -> ConceptGraph:
    """The concept graph (cached per file)."""
    return _cached(str(path) if path is not None else None)
