"""The knowledge index: SQLite FTS5 with BM25 ranking, optionally fused with dense retrieval.

One SQLite file holds the sources (files), their chunks, an FTS5 table over (title, section, text)
and, when an embedder is used, one vector per chunk and embedder. The default index lives at
``$SLIDESCOUT_HOME/knowledge/index.sqlite`` and is built on first use from the starter corpus
shipped with slidescout; ``kb.add(folder)`` adds the user's own references (``.md``, ``.txt``,
``.pdf``). Adding a folder again updates changed files, drops deleted ones and skips the rest.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from slidescout.core.home import slidescout_home
from slidescout.errors import ConfigError, DatasetError
from slidescout.tools.knowledge.corpus import (
    is_supported,
    starter_files,
)
from slidescout.tools.knowledge.dense import (
    EMBEDDER_ENV,
    Embedder,
    VectorStore,
    load_embedder,
    reciprocal_rank_fusion,
)
from slidescout.tools.knowledge.ingest import delete_source, now, sync_files
from slidescout.tools.knowledge.models import AddReport, Hit, SkippedFile, SourceInfo
from slidescout.tools.knowledge.terms import (
    MAX_QUERY_TERMS,
    STOPWORDS,
    TermStats,
    expression,
    normalize_query,
    query_terms,
)

log = logging.getLogger("slidescout.knowledge")

SCHEMA_VERSION = "1"
STARTER_ROOT = "starter"
_CANDIDATES = 50  # per retriever, before fusion and re-ranking
_TITLE_W, _SECTION_W, _TEXT_W = 1.0, 3.0, 1.0
__all__ = ["MAX_QUERY_TERMS", "STOPWORDS", "KnowledgeBase", "default_knowledge_base", "fts_query"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS roots(path TEXT PRIMARY KEY, added_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sources(
    id INTEGER PRIMARY KEY,
    key TEXT UNIQUE NOT NULL,
    root TEXT NOT NULL,
    name TEXT NOT NULL,
    title TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    n_chunks INTEGER NOT NULL,
    indexed_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS sources_root ON sources(root);
CREATE TABLE IF NOT EXISTS chunks(
    id INTEGER PRIMARY KEY,
    source_id INTEGER NOT NULL,
    ord INTEGER NOT NULL,
    section TEXT NOT NULL,
    text TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS chunks_source ON chunks(source_id);
CREATE VIRTUAL TABLE IF NOT EXISTS chunks_fts USING fts5(
    title, section, text, tokenize = 'porter unicode61 remove_diacritics 2'
);
CREATE TABLE IF NOT EXISTS vectors(
    chunk_id INTEGER NOT NULL,
    model TEXT NOT NULL,
    vec BLOB NOT NULL,
    PRIMARY KEY (chunk_id, model)
);
"""


def default_index_path() -> Path:
    return slidescout_home() / "knowledge" / "index.sqlite"


def fts_query(query: str) -> str | None:
    """Turn free text into a safe FTS5 expression: each word quoted (punctuation inside a word
    makes it a phrase, e.g. ``TTF-1`` or ``4+3``), stopwords dropped, terms OR-combined so that
    BM25 ranks chunks matching more of them first. None when the query has no searchable word."""
    return expression(query_terms(query))


class KnowledgeBase:
    """A searchable index of reference texts. Use :meth:`open`; safe to share between threads."""

    def __init__(
        self, conn: sqlite3.Connection, path: Path | None, embedder: Embedder | None
    ) -> None:
        self._conn = conn
        self.path = path
        self.embedder = embedder
        self._lock = threading.RLock()
        self._vectors = VectorStore()
        self._stats = TermStats()

    # ------------------------------------------------------------------ opening

    @classmethod
    def open(
        cls,
        path: str | Path | None = None,
        *,
        starter: bool = True,
        embedder: Embedder | str | Path | None = None,
    ) -> KnowledgeBase:
        """Open (creating if needed) an index.

        Args:
            path: the SQLite file; default ``$SLIDESCOUT_HOME/knowledge/index.sqlite``;
                ``":memory:"`` for a throw-away index.
            starter: include the starter corpus shipped with slidescout (kept in sync with it).
            embedder: for dense retrieval fused with BM25: an object with ``encode``, the path of
                a local sentence-transformers model, or ``"hashing"``. When None, the
                ``SLIDESCOUT_KB_EMBEDDER`` environment variable is used if set; ``""`` means none.
        """
        if embedder is None:
            embedder = os.environ.get(EMBEDDER_ENV) or None
        model = load_embedder(embedder)
        target: Path | None
        if path is None or str(path) != ":memory:":
            target = Path(path).expanduser() if path is not None else default_index_path()
            if target.is_dir():
                raise ConfigError(
                    f"knowledge index path {target} is a folder; give a file path such as {target / 'index.sqlite'}"
                )
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise ConfigError(
                    f"cannot create the knowledge index folder {target.parent}: {exc.strerror or exc}; set SLIDESCOUT_HOME to a writable folder"
                ) from exc
            location = str(target)
        else:
            target, location = None, ":memory:"
        try:
            conn = sqlite3.connect(
                location, timeout=30.0, check_same_thread=False, isolation_level=None
            )
        except sqlite3.Error as exc:
            raise ConfigError(f"cannot open the knowledge index {location}: {exc}") from exc
        kb = cls(conn, target, model)
        try:
            kb._prepare(starter)
        except sqlite3.DatabaseError as exc:
            conn.close()
            if "locked" in str(exc).lower():
                raise ConfigError(
                    f"the knowledge index {location} is locked by another process; try again"
                ) from exc
            if "fts5" in str(exc).lower():
                raise ConfigError(
                    "this Python's sqlite3 lacks FTS5, which the knowledge index needs; use a Python built with a recent SQLite"
                ) from exc
            raise ConfigError(
                f"{location} is not a usable knowledge index ({exc}); delete it to rebuild, or pass another path"
            ) from exc
        return kb

    def _prepare(self, starter: bool) -> None:
        with self._lock:
            if self.path is not None:
                # some filesystems refuse WAL; the default journal works there too
                with contextlib.suppress(sqlite3.OperationalError):
                    self._conn.execute("PRAGMA journal_mode=WAL")
            stale_roots: list[str] = []
            with self._write() as cur:
                has_meta = cur.execute(
                    "SELECT 1 FROM sqlite_master WHERE type='table' AND name='meta'"
                ).fetchone()
                if has_meta:
                    row = cur.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
                    if row is None or row[0] != SCHEMA_VERSION:
                        stale_roots = _old_roots(cur)
                        _drop_all(cur)
                for statement in _statements(_SCHEMA):
                    cur.execute(statement)
                cur.execute(
                    "INSERT OR REPLACE INTO meta(key, value) VALUES('schema', ?)", (SCHEMA_VERSION,)
                )
        if starter:
            self._sync_starter()
        for root in stale_roots:  # an index from an older schema: rebuild the user's folders
            if root != STARTER_ROOT and Path(root).exists():
                self.add(root)
        if self.embedder is not None:
            self._embed_missing()

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> KnowledgeBase:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def set_embedder(self, embedder: Embedder | str | Path | None) -> None:
        """Switch dense retrieval on (an embedder, a local model path, ``"hashing"``) or off (None)."""
        with self._lock:
            self.embedder = load_embedder(embedder)
            self._vectors.invalidate()
            if self.embedder is not None:
                self._embed_missing()

    def _changed(self) -> None:
        """The indexed text changed: drop the cached vectors matrix and term statistics."""
        with self._lock:
            self._vectors.invalidate()
            self._stats.invalidate()

    def _embed_missing(self) -> int:
        assert self.embedder is not None
        with self._lock:
            return self._vectors.embed_missing(self._conn, self.embedder, self._write)

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Cursor]:
        with self._lock:
            cur = self._conn.cursor()
            cur.execute("BEGIN IMMEDIATE")
            try:
                yield cur
            except BaseException:
                cur.execute("ROLLBACK")
                raise
            else:
                cur.execute("COMMIT")
            finally:
                cur.close()

    # ------------------------------------------------------------------ adding

    def _sync_starter(self) -> None:
        files = starter_files()
        if not files:
            log.warning(
                "the starter corpus is missing from the installed package; the knowledge base starts empty"
            )
        digest = hashlib.sha256()
        for f in files:
            digest.update(f.name.encode() + b"\0" + f.read_bytes() + b"\0")
        want = digest.hexdigest()
        row = self._conn.execute("SELECT value FROM meta WHERE key='starter'").fetchone()
        if row is not None and row[0] == want:
            return
        with self._write() as cur:
            row = cur.execute("SELECT value FROM meta WHERE key='starter'").fetchone()
            if row is not None and row[0] == want:  # another process built it meanwhile
                return
            sync_files(
                cur, STARTER_ROOT, [(f"{STARTER_ROOT}:{f.name}", f.name, f) for f in files], None
            )
            cur.execute("INSERT OR REPLACE INTO meta(key, value) VALUES('starter', ?)", (want,))
        self._changed()

    def add(
        self, directory: str | Path, *, progress: Callable[[str], None] | None = None
    ) -> AddReport:
        """Index the ``.md``, ``.txt`` and ``.pdf`` files under a folder (or one such file).

        Files already indexed and unchanged are skipped, changed ones re-indexed, and files that
        disappeared from the folder since the last add are removed. Unreadable files are skipped
        and listed in the report (and logged as a warning). ``progress`` is called with each
        file's name before it is read.
        """
        root = Path(directory).expanduser()
        if not root.exists():
            raise ConfigError(
                f"knowledge folder not found: {root}; give an existing folder of .md, .txt or .pdf files"
            )
        root = root.resolve()
        if root.is_file():
            if not is_supported(root):
                raise ConfigError(f"{root.name} is not a .md, .txt or .pdf file")
            entries = [(str(root), root.name, root)]
        else:
            found = sorted(
                p
                for p in root.rglob("*")
                if p.is_file()
                and is_supported(p)
                and not any(part.startswith(".") for part in p.relative_to(root).parts)
            )
            entries = [(str(p), p.relative_to(root).as_posix(), p) for p in found]
        key = str(root)
        with self._lock:
            known = self._conn.execute("SELECT 1 FROM roots WHERE path=?", (key,)).fetchone()
            if not entries and not known:
                raise DatasetError(f"no .md, .txt or .pdf files under {root}")
            with self._write() as cur:
                cur.execute(
                    "INSERT OR IGNORE INTO roots(path, added_at) VALUES(?, ?)", (key, now())
                )
                report = sync_files(cur, key, entries, progress)
            self._changed()
            if self.embedder is not None:
                self._embed_missing()
        if report.skipped:
            log.warning(
                "skipped %d file(s) that could not be indexed: %s",
                len(report.skipped),
                "; ".join(f"{s.path} ({s.reason})" for s in report.skipped),
            )
        return report

    def refresh(self) -> list[AddReport]:
        """Re-scan every folder added so far (missing folders are reported, not raised)."""
        reports = []
        for root in self.roots():
            if Path(root).exists():
                reports.append(self.add(root))
            else:
                reports.append(
                    AddReport(
                        root=root,
                        skipped=[SkippedFile(path=root, reason="folder no longer exists")],
                    )
                )
        return reports

    def remove(self, directory: str | Path) -> int:
        """Forget a folder (or file) added before. Returns how many files were removed."""
        target = str(Path(directory).expanduser().resolve())
        with self._write() as cur:
            rows = cur.execute(
                "SELECT id FROM sources WHERE root=? OR key=?", (target, target)
            ).fetchall()
            had_root = cur.execute("DELETE FROM roots WHERE path=?", (target,)).rowcount
            for (source_id,) in rows:
                delete_source(cur, source_id)
        self._changed()
        if not rows and not had_root:
            raise ConfigError(f"{target} is not in the knowledge base; see `slidescout kb list`")
        return len(rows)

    # ------------------------------------------------------------------ reading

    def __len__(self) -> int:
        with self._lock:
            return int(self._conn.execute("SELECT count(*) FROM chunks").fetchone()[0])

    def roots(self) -> list[str]:
        """The folders (and files) added with :meth:`add`, oldest first."""
        with self._lock:
            return [
                r for (r,) in self._conn.execute("SELECT path FROM roots ORDER BY added_at, path")
            ]

    def sources(self) -> list[SourceInfo]:
        """Every indexed file with its chunk count; the starter corpus first."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT s.name, s.root, s.key, s.title, count(c.id), s.indexed_at FROM sources s "
                "LEFT JOIN chunks c ON c.source_id = s.id GROUP BY s.id "
                "ORDER BY s.root != ?, s.root, s.name",
                (STARTER_ROOT,),
            ).fetchall()
        return [
            SourceInfo(name=n, root=r, path=k, title=t, chunks=c, indexed_at=a)
            for n, r, k, t, c, a in rows
        ]

    def section(self, source: str, section: str) -> list[Hit]:
        """The chunks of one section (exact heading, else headings starting with it), in order."""
        with self._lock:
            sql = (
                "SELECT c.id, c.text, s.name, c.section, s.key FROM chunks c JOIN sources s ON s.id = c.source_id "
                "WHERE s.name = ? AND {} ORDER BY c.source_id, c.ord"
            )
            rows = self._conn.execute(sql.format("c.section = ?"), (source, section)).fetchall()
            if not rows:
                rows = self._conn.execute(
                    sql.format("c.section LIKE ? ESCAPE '\\'"), (source, _like_prefix(section))
                ).fetchall()
        return [
            Hit(chunk_id=i, text=t, source=n, section=s, path=k, score=0.0)
            for i, t, n, s, k in rows
        ]

    def search_phrase(
        self, phrase: str, k: int = 5, *, query: str = "", any_order: bool = False
    ) -> list[Hit]:
        """The ``k`` chunks that contain the words of ``phrase`` in sequence (with
        ``any_order``: anywhere in the chunk): in the order :meth:`search` gives them for
        ``query`` when one is given, else by BM25."""
        tokens = re.findall(r"[^\W_]+", normalize_query(phrase).lower()[:400])
        if not tokens:
            return []
        if any_order:
            fts = " AND ".join(f'"{t}"' for t in tokens)
        else:
            fts = '"' + " ".join(tokens) + '"'
        with self._lock:
            found = self._bm25(fts, max(k, _CANDIDATES))
        if not query or len(found) <= 1:
            return list(found.values())[:k]
        order = {h.chunk_id: i for i, h in enumerate(self.search(query, k=_CANDIDATES))}
        ranked = sorted(found.values(), key=lambda h: order.get(h.chunk_id, len(order)))
        return ranked[:k]

    def _bm25(self, expression: str, n: int) -> dict[int, Hit]:
        rows = self._conn.execute(
            "SELECT c.id, c.text, s.name, c.section, s.key, "
            f"bm25(chunks_fts, {_TITLE_W}, {_SECTION_W}, {_TEXT_W}) AS rank "
            "FROM chunks_fts JOIN chunks c ON c.id = chunks_fts.rowid "
            "JOIN sources s ON s.id = c.source_id "
            "WHERE chunks_fts MATCH ? ORDER BY rank LIMIT ?",
            (expression, n),
        ).fetchall()
        return {
            row[0]: Hit(
                chunk_id=row[0],
                text=row[1],
                source=row[2],
                section=row[3],
                path=row[4],
                score=-row[5],
                bm25_rank=rank,
            )
            for rank, row in enumerate(rows, start=1)
        }

    def search(self, query: str, k: int = 5, *, dense: bool = True) -> list[Hit]:
        """The ``k`` chunks that best match a free-text query, best first.

        Any text is accepted: it is NFKC-normalised, quotes, operators and punctuation are
        neutralised, and a word that no chunk has is replaced by the corpus word it is a close
        misspelling of. Passages are ranked first by how much of the query's idf weight they
        contain (``Hit.coverage``), then by BM25, or with an embedder set (and ``dense``) by
        BM25 and dense similarity fused by reciprocal rank fusion; passages found by meaning
        alone come last. Returns an empty list when nothing matches (or the index is empty).
        """
        if k < 1:
            raise ConfigError(f"k must be at least 1 (got {k})")
        with self._lock:
            terms = [self._stats.correct(self._conn, t) for t in query_terms(query)]
            fts = expression(terms)
            if fts is None:
                return []
            lexical = self._bm25(fts, max(_CANDIDATES, 5 * k))
            order: list[tuple[int, float]] = [(cid, h.score) for cid, h in lexical.items()]
            dense_rank: dict[int, int] = {}
            meaning_only: list[tuple[int, float]] = []
            if self.embedder is not None and dense:
                dense_ids = self._vectors.rank(
                    self._conn, self.embedder, self._write, query, max(_CANDIDATES, 5 * k)
                )
                dense_rank = {cid: rank for rank, cid in enumerate(dense_ids, start=1)}
                # Dense similarity re-ranks the passages that share words with the query;
                # passages found only by meaning come after them (a synonym still surfaces).
                within = [cid for cid in dense_ids if cid in lexical]
                order = reciprocal_rank_fusion([list(lexical), within])
                meaning_only = [
                    (cid, score)
                    for cid, score in reciprocal_rank_fusion([dense_ids])
                    if cid not in lexical
                ]
            coverage = self._stats.coverage(self._conn, terms, list(lexical))
            position = {cid: i for i, (cid, _) in enumerate(order)}
            order.sort(key=lambda item: (-round(coverage[item[0]], 2), position[item[0]]))
            chosen = (order + meaning_only)[:k]
            extra = self._hits_by_id([cid for cid, _ in chosen if cid not in lexical])
        hits = []
        for cid, score in chosen:
            base = lexical.get(cid) or extra[cid]
            update: dict[str, float | int | None] = {
                "score": score,
                "coverage": coverage.get(cid, 0.0),
            }
            if dense_rank:
                update["dense_rank"] = dense_rank.get(cid)
            hits.append(base.model_copy(update=update))
        return hits

    def term_weights(self, terms: list[str]) -> dict[str, float]:
        """The idf of each term (spelling left as given) in this index."""
        with self._lock:
            return {t: self._stats.idf(self._conn, t) for t in dict.fromkeys(terms)}

    def correct(self, term: str) -> str:
        """The term, or the corpus word it is a close misspelling of (see :meth:`search`)."""
        with self._lock:
            return self._stats.correct(self._conn, term)

    def contains(self, terms: list[str], chunk_ids: list[int]) -> dict[str, set[int]]:
        """For each term, which of the chunks contain it (FTS5 matching: stemmed, any column)."""
        with self._lock:
            return self._stats.presence(self._conn, terms, chunk_ids)

    def _hits_by_id(self, ids: list[int]) -> dict[int, Hit]:
        if not ids:
            return {}
        marks = ",".join("?" * len(ids))
        rows = self._conn.execute(
            "SELECT c.id, c.text, s.name, c.section, s.key FROM chunks c JOIN sources s ON s.id = c.source_id "
            f"WHERE c.id IN ({marks})",
            ids,
        ).fetchall()
        return {
            i: Hit(chunk_id=i, text=t, source=n, section=s, path=p, score=0.0)
            for i, t, n, s, p in rows
        }


# ---------------------------------------------------------------------- helpers


def _statements(script: str) -> list[str]:
    return [s.strip() for s in script.split(";") if s.strip()]


def _old_roots(cur: sqlite3.Cursor) -> list[str]:
    try:
        return [r for (r,) in cur.execute("SELECT path FROM roots")]
    except sqlite3.Error:
        return []


def _drop_all(cur: sqlite3.Cursor) -> None:
    for table in ("chunks_fts", "vectors", "chunks", "sources", "roots", "meta"):
        cur.execute(f"DROP TABLE IF EXISTS {table}")


def _like_prefix(text: str) -> str:
    return re.sub(r"([\\%_])", r"\\\1", text) + "%"


_DEFAULT: dict[tuple[str, str], KnowledgeBase] = {}
_DEFAULT_LOCK = threading.Lock()


def default_knowledge_base() -> KnowledgeBase:
    """The user's index (opened once per process, per SLIDESCOUT_HOME and embedder setting)."""
    key = (str(default_index_path()), os.environ.get(EMBEDDER_ENV, ""))
    with _DEFAULT_LOCK:
        kb = _DEFAULT.get(key)
        if kb is None:
            _DEFAULT.clear()  # a new home (tests) or setting: drop the old handle
            kb = KnowledgeBase.open()
            _DEFAULT[key] = kb
        return kb
