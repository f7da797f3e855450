"""Knowledge lookup: a starter pathology corpus, an FTS5/BM25 index (optionally fused with dense
retrieval), a concept graph, numeric criteria tables and per-task criteria cards, and ``lookup``
for the agent's tool.

    from slidescout.tools.knowledge import lookup
    print(lookup("distinguish lung adenocarcinoma from lung squamous cell carcinoma").text)
"""

from slidescout.tools.knowledge.corpus import (
    Chunk,
    Document,
    read_document,
    starter_corpus_dir,
    starter_files,
)
from slidescout.tools.knowledge.criteria import criteria_answer, criteria_card, load_tables
from slidescout.tools.knowledge.dense import (
    Embedder,
    HashingEmbedder,
    SentenceTransformerEmbedder,
    load_embedder,
    reciprocal_rank_fusion,
)
from slidescout.tools.knowledge.gleason import GleasonGrade, isup_grade_group
from slidescout.tools.knowledge.graph import (
    Comparison,
    ConceptGraph,
    Profile,
    load_graph,
    normalize_name,
)
from slidescout.tools.knowledge.index import (
    KnowledgeBase,
    default_index_path,
    default_knowledge_base,
    fts_query,
)
from slidescout.tools.knowledge.lookup import MAX_TEXT_CHARS, LookupResult, lookup
from slidescout.tools.knowledge.models import AddReport, Hit, SkippedFile, SourceInfo

__all__ = [
    "MAX_TEXT_CHARS",
    "AddReport",
    "Chunk",
    "Comparison",
    "ConceptGraph",
    "Document",
    "Embedder",
    "GleasonGrade",
    "HashingEmbedder",
    "Hit",
    "KnowledgeBase",
    "LookupResult",
    "Profile",
    "SentenceTransformerEmbedder",
    "SkippedFile",
    "SourceInfo",
    "criteria_answer",
    "criteria_card",
    "default_index_path",
    "default_knowledge_base",
    "fts_query",
    "isup_grade_group",
    "load_embedder",
    "load_graph",
    "load_tables",
    "lookup",
    "normalize_name",
    "read_document",
    "reciprocal_rank_fusion",
    "starter_corpus_dir",
    "starter_files",
]
