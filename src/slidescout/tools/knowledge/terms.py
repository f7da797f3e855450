"""Query terms against the knowledge index: splitting a query into FTS5 terms, correcting a
misspelt word to the corpus's own vocabulary, inverse document frequency, and which chunks
contain which terms (asked through FTS5, so the porter stems agree with the index).

Used by ``KnowledgeBase.search`` to rank passages by how much of the query's weight they cover
(a passage that misses the query's rarest word ranks after one that has it), and by ``lookup``
to refuse passages that do not cover what was asked.
"""

from __future__ import annotations

import difflib
import math
import re
import sqlite3
import unicodedata
from collections.abc import Iterable

MAX_QUERY_TERMS = 32
SPELLING_CUTOFF = (
    0.9  # difflib ratio: 'hepatocelular' -> 'hepatocellular', not 'ependymoma' -> 'ependyma'
)
MIN_SPELLING_LENGTH = 6

# Words that carry no meaning for retrieval; dropped from queries unless nothing else is left.
STOPWORDS = frozenset(
    """a an and are as at be been being but by can could do does did for from has have how i if in
    into is it its me my of on or our show tell that the their them then there these they this to
    was were what when where which who whom why will with would you your about please give find
    describe explain list""".split()
)
_WORD = re.compile(r"[^\W_]+")


def normalize_query(text: str) -> str:
    """NFKC-normalised text (full-width letters and digits, ligatures, compatibility forms)."""
    return unicodedata.normalize("NFKC", text or "")


def query_terms(query: str) -> list[str]:
    """The query's terms for FTS5, in order, without repeats: each word lower-cased, punctuation
    inside a word kept as a phrase ('ttf 1', '4 3'), stopwords dropped unless nothing else is
    left; at most ``MAX_QUERY_TERMS``."""
    terms: list[str] = []
    for word in normalize_query(query)[:4000].split():
        tokens = _WORD.findall(word.lower())
        phrase = " ".join(tokens)
        if phrase and phrase not in terms:
            terms.append(phrase)
    meaningful = [t for t in terms if t not in STOPWORDS]
    return (meaningful or terms)[:MAX_QUERY_TERMS]


def expression(terms: Iterable[str]) -> str | None:
    """An FTS5 expression matching any of the terms (each quoted); None for no terms."""
    quoted = [f'"{t}"' for t in terms if t]
    return " OR ".join(quoted) if quoted else None


class TermStats:
    """Document frequencies and the vocabulary of one index, cached until the index changes.
    The caller holds the index's lock."""

    def __init__(self) -> None:
        self._vocab: dict[str, int] | None = None
        self._df: dict[str, int] = {}
        self._chunks: int | None = None

    def invalidate(self) -> None:
        self._vocab, self._df, self._chunks = None, {}, None

    def chunks(self, conn: sqlite3.Connection) -> int:
        if self._chunks is None:
            self._chunks = int(conn.execute("SELECT count(*) FROM chunks_fts").fetchone()[0])
        return self._chunks

    def df(self, conn: sqlite3.Connection, term: str) -> int:
        """How many chunks contain the term (as FTS5 matches it: stemmed, any column)."""
        if term not in self._df:
            row = conn.execute(
                "SELECT count(*) FROM chunks_fts WHERE chunks_fts MATCH ?", (f'"{term}"',)
            ).fetchone()
            self._df[term] = int(row[0])
        return self._df[term]

    def idf(self, conn: sqlite3.Connection, term: str) -> float:
        """BM25's inverse document frequency of a term (a term in no chunk weighs the most)."""
        n, df = self.chunks(conn), self.df(conn, term)
        return math.log(1.0 + (n - df + 0.5) / (df + 0.5))

    def vocabulary(self, conn: sqlite3.Connection) -> dict[str, int]:
        """Every word of the indexed text (lower-cased) with the number of chunks holding it."""
        if self._vocab is None:
            counts: dict[str, int] = {}
            for title, section, text in conn.execute("SELECT title, section, text FROM chunks_fts"):
                for word in set(_WORD.findall(f"{title} {section} {text}".lower())):
                    counts[word] = counts.get(word, 0) + 1
            self._vocab = counts
        return self._vocab

    def correct(self, conn: sqlite3.Connection, term: str) -> str:
        """The term, or, when no chunk has it, the corpus word it is a close misspelling of
        ('cholangiocarinoma' -> 'cholangiocarcinoma'). Short words and phrases stay as they are."""
        if len(term) < MIN_SPELLING_LENGTH or not term.isalpha() or self.df(conn, term):
            return term
        vocab = self.vocabulary(conn)
        close = difflib.get_close_matches(term, list(vocab), n=1, cutoff=SPELLING_CUTOFF)
        return close[0] if close else term

    def presence(
        self, conn: sqlite3.Connection, terms: Iterable[str], ids: Iterable[int]
    ) -> dict[str, set[int]]:
        """For each term, which of the chunks ``ids`` contain it."""
        wanted = list(dict.fromkeys(ids))
        out: dict[str, set[int]] = {}
        if not wanted:
            return {t: set() for t in terms}
        marks = ",".join("?" * len(wanted))
        for term in dict.fromkeys(terms):
            rows = conn.execute(
                f"SELECT rowid FROM chunks_fts WHERE chunks_fts MATCH ? AND rowid IN ({marks})",
                (f'"{term}"', *wanted),
            ).fetchall()
            out[term] = {int(r[0]) for r in rows}
        return out

    def coverage(
        self, conn: sqlite3.Connection, terms: list[str], ids: list[int]
    ) -> dict[int, float]:
        """Share of the query's idf weight that each chunk contains (terms that no chunk of the
        index has are left out: they cannot separate passages)."""
        known = [t for t in dict.fromkeys(terms) if self.df(conn, t)]
        weights = {t: self.idf(conn, t) for t in known}
        total = sum(weights.values())
        if not total:
            return dict.fromkeys(ids, 0.0)
        present = self.presence(conn, known, ids)
        return {cid: sum(w for t, w in weights.items() if cid in present[t]) / total for cid in ids}
