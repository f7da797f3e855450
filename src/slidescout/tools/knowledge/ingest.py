"""Writing files into the knowledge index: one folder's files synced in a write transaction
(unchanged files skipped by hash, changed ones re-indexed, vanished ones removed)."""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

from slidescout.errors import DatasetError
from slidescout.tools.knowledge.corpus import read_document, without_source
from slidescout.tools.knowledge.models import AddReport, SkippedFile


def sync_files(
    cur: sqlite3.Cursor,
    root: str,
    entries: list[tuple[str, str, Path]],
    progress: Callable[[str], None] | None,
) -> AddReport:
    """Index ``entries`` (key, display name, path) as the files of ``root``; files of ``root``
    that are not among them any more are removed."""
    report = AddReport(root=root)
    keys = [k for k, _, _ in entries]
    existing: dict[str, tuple[int, str, str]] = {
        k: (i, s, r)
        for i, k, s, r in cur.execute(
            "SELECT id, key, sha256, root FROM sources WHERE root=?", (root,)
        )
    }
    for k in keys:  # the same file added before through another folder
        if k not in existing:
            row = cur.execute(
                "SELECT id, key, sha256, root FROM sources WHERE key=?", (k,)
            ).fetchone()
            if row:
                existing[k] = (row[0], row[2], row[3])
    for key, name, path in entries:
        if progress is not None:
            progress(name)
        old = existing.get(key)
        try:
            sha = hashlib.sha256(path.read_bytes()).hexdigest()
        except OSError as exc:
            sha, error = "", f"cannot read: {exc.strerror or exc}"
        else:
            error = ""
        if old is not None and sha and old[1] == sha:
            cur.execute("UPDATE sources SET root=?, name=? WHERE id=?", (root, name, old[0]))
            report.unchanged.append(name)
            continue
        if old is not None:
            delete_source(cur, old[0])
        if error:
            report.skipped.append(SkippedFile(path=str(path), reason=error))
            continue
        try:
            doc = read_document(path)
        except DatasetError as exc:
            report.skipped.append(
                SkippedFile(path=str(path), reason=str(exc).replace(str(path), path.name))
            )
            continue
        cur.execute(
            "INSERT INTO sources(key, root, name, title, sha256, n_chunks, indexed_at) VALUES(?,?,?,?,?,?,?)",
            (key, root, name, doc.title, doc.sha256, len(doc.chunks), now()),
        )
        source_id = cur.lastrowid
        for order, chunk in enumerate(doc.chunks):
            cur.execute(
                "INSERT INTO chunks(source_id, ord, section, text) VALUES(?,?,?,?)",
                (source_id, order, chunk.section, chunk.text),
            )
            cur.execute(
                "INSERT INTO chunks_fts(rowid, title, section, text) VALUES(?,?,?,?)",
                (cur.lastrowid, doc.title, chunk.section, without_source(chunk.text)),
            )
        report.indexed.append(name)
        report.chunks += len(doc.chunks)
    wanted = set(keys)
    for key, (source_id, _, old_root) in existing.items():
        if key not in wanted and old_root == root:
            name = cur.execute("SELECT name FROM sources WHERE id=?", (source_id,)).fetchone()
            delete_source(cur, source_id)
            report.removed.append(name[0] if name else key)
    return report


def delete_source(cur: sqlite3.Cursor, source_id: int) -> None:
    cur.execute(
        "DELETE FROM chunks_fts WHERE rowid IN (SELECT id FROM chunks WHERE source_id=?)",
        (source_id,),
    )
    cur.execute(
        "DELETE FROM vectors WHERE chunk_id IN (SELECT id FROM chunks WHERE source_id=?)",
        (source_id,),
    )
    cur.execute("DELETE FROM chunks WHERE source_id=?", (source_id,))
    cur.execute("DELETE FROM sources WHERE id=?", (source_id,))


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
