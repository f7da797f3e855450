"""The known question/answer set for ``lookup`` (tests/data/lookup_qa.yaml): its shape, and
precision@1 of BM25 answers against the thresholds recorded in docs/benchmarks.md."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

from slidescout.tools.knowledge import KnowledgeBase, starter_files

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_lookup.py"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_lookup", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def kb(tmp_path_factory) -> KnowledgeBase:
    return KnowledgeBase.open(tmp_path_factory.mktemp("qa") / "index.sqlite", embedder="")


def test_the_question_set_covers_every_corpus_file(bench, kb):
    items = bench.load_items()
    assert len(items) >= 60
    assert len({i["id"] for i in items}) == len(items)
    assert {i["split"] for i in items} == {"dev", "heldout"}
    assert sum(i["split"] == "heldout" for i in items) >= 20
    assert {i["file"] for i in items} == {p.name for p in starter_files() if p.suffix == ".md"}
    for item in items:
        assert item["facts"] and item["question"].strip()
        for citation in bench._sections(item):
            source, _, section = citation.partition(" § ")
            assert kb.section(source, section), f"{item['id']}: no section {citation}"


def test_bm25_precision_at_1(bench, kb):
    """Answer precision@1 of BM25 lookups: at least 0.9 on all and on the held-out questions."""
    rows = bench.evaluate(kb, bench.load_items())["rows"]
    missed = [r["id"] for r in rows if not r["answer"]]
    assert bench.precision(rows, "answer") >= 0.9, missed
    assert bench.precision(rows, "answer", "heldout") >= 0.9, missed


def test_carries_needs_every_fact(bench):
    assert bench.carries("CK7 positive, CK20 negative", ["ck7", "CK20 negative | CK20-"])
    assert not bench.carries("CK7 positive", ["CK7", "CK20"])
