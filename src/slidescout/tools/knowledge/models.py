"""Serialised results of the knowledge index: hits, add reports, source listings."""

from __future__ import annotations

from pydantic import BaseModel, computed_field


class Hit(BaseModel):
    """One retrieved chunk. ``score`` is higher-is-better (negated BM25, or the fused RRF score);
    search results are ordered by ``coverage`` (the share of the query's weight the chunk
    holds, rounded to 0.01) first, then by score."""

    text: str
    source: str
    section: str
    score: float
    path: str = ""
    chunk_id: int = 0
    bm25_rank: int | None = None
    dense_rank: int | None = None
    coverage: float | None = None  # share of the query's idf weight the chunk contains
    reference: str = (
        ""  # the section's published source (WHO edition, ISUP, CAP), when it names one
    )

    @computed_field  # type: ignore[prop-decorator]
    @property
    def citation(self) -> str:
        return f"{self.source} § {self.section}"


class SkippedFile(BaseModel):
    path: str
    reason: str


class AddReport(BaseModel):
    """What ``KnowledgeBase.add`` did to one folder (or file)."""

    root: str
    indexed: list[str] = []
    unchanged: list[str] = []
    removed: list[str] = []
    skipped: list[SkippedFile] = []
    chunks: int = 0  # chunks written by this call

    @property
    def files(self) -> int:
        return len(self.indexed) + len(self.unchanged)


class SourceInfo(BaseModel):
    name: str
    root: str
    path: str
    title: str
    chunks: int
    indexed_at: str
