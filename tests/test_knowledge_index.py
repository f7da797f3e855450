"""Knowledge index: chunking, FTS5/BM25 search, citations, query sanitising, adding folders."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import pytest

from slidescout.errors import ConfigError, DatasetError
from slidescout.tools.knowledge import KnowledgeBase, default_index_path, fts_query
from slidescout.tools.knowledge.corpus import markdown_chunks, split_long, text_chunks


def make_pdf(path: Path, pages: list[str]) -> Path:
    """A minimal valid PDF with one line of Helvetica text per page (empty string: no text)."""
    objects: dict[int, str] = {
        1: "<< /Type /Catalog /Pages 2 0 R >>",
        3: "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    }
    page_ids = [4 + 2 * i for i in range(len(pages))]
    objects[2] = (
        f"<< /Type /Pages /Kids [{' '.join(f'{p} 0 R' for p in page_ids)}] /Count {len(pages)} >>"
    )
    for pid, text in zip(page_ids, pages, strict=True):
        stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET" if text else ""
        objects[pid] = (
            "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
            f"/Resources << /Font << /F1 3 0 R >> >> /Contents {pid + 1} 0 R >>"
        )
        objects[pid + 1] = f"<< /Length {len(stream)} >>\nstream\n{stream}\nendstream"
    out = b"%PDF-1.4\n"
    offsets = {}
    for oid in sorted(objects):
        offsets[oid] = len(out)
        out += f"{oid} 0 obj\n{objects[oid]}\nendobj\n".encode()
    xref = len(out)
    size = max(objects) + 1
    out += f"xref\n0 {size}\n0000000000 65535 f \n".encode()
    for oid in range(1, size):
        out += f"{offsets[oid]:010d} 00000 n \n".encode()
    out += f"trailer\n<< /Size {size} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    path.write_bytes(out)
    return path


@pytest.fixture(scope="module")
def starter_kb(tmp_path_factory) -> KnowledgeBase:
    return KnowledgeBase.open(tmp_path_factory.mktemp("kb") / "index.sqlite", embedder="")


@pytest.fixture
def refs(tmp_path: Path) -> Path:
    folder = tmp_path / "refs"
    (folder / "sub").mkdir(parents=True)
    (folder / ".hidden").mkdir()
    (folder / "notes.md").write_text(
        "# Lab notes\n\n## Zebra tumor\n\nZebra tumors show striped quokka nuclei.\n\n"
        "## Other\n\nNothing about animals here.\n",
        encoding="utf-8",
    )
    (folder / "sub" / "plain.txt").write_text(
        "First paragraph about wombat granules.\nSecond line.\n\nA later paragraph on platypus bodies.\n",
        encoding="utf-8",
    )
    make_pdf(
        folder / "paper.pdf",
        ["Page one mentions axolotl cells", "Page two covers narwhal crystals"],
    )
    (folder / ".hidden" / "secret.md").write_text("## Hidden\n\nunicorn", encoding="utf-8")
    (folder / "image.png").write_bytes(b"\x89PNG not indexed")
    return folder


# ------------------------------------------------------------------ chunking


def test_markdown_chunks_keep_title_sections_and_subsections():
    text = (
        "---\nauthor: x\n---\n# Title\n\nIntro text.\n\n## First\n\nBody one.\n\n### Sub\n\nSub body.\n\n"
        "```\n## not a heading\n```\n\n## Second\n\nBody two.\n"
    )
    title, chunks = markdown_chunks(text, default_title="file")
    assert title == "Title"
    assert [c.section for c in chunks] == ["Title", "First", "First / Sub", "Second"]
    assert "## not a heading" in chunks[2].text
    assert "author" not in " ".join(c.text for c in chunks)


def test_long_sections_split_at_paragraphs_and_keep_heading():
    paragraphs = [f"Paragraph {i} " + "word " * 120 for i in range(8)]
    _, chunks = markdown_chunks("## Long\n\n" + "\n\n".join(paragraphs))
    assert len(chunks) > 1
    assert {c.section for c in chunks} == {"Long"}
    assert all(len(c.text) <= 2000 for c in chunks)
    assert split_long("x" * 5000, 1000) and all(
        len(p) <= 1000 for p in split_long("x" * 5000, 1000)
    )


def test_text_chunks_cite_line_ranges():
    chunks = text_chunks("alpha\nbeta\n\ngamma\n")
    assert [c.section for c in chunks] == ["lines 1-4"]
    many = text_chunks("\n\n".join("word " * 100 for _ in range(10)), max_chars=1200)
    assert len(many) > 1 and many[0].section.startswith("lines 1-")


# ------------------------------------------------------------------ search on the starter corpus


def test_cribriform_glands_gleason_finds_pattern_4(starter_kb):
    hits = starter_kb.search("cribriform glands gleason", k=5)
    assert hits[0].citation == "gleason.md § Pattern 4"
    assert hits[0].source == "gleason.md" and hits[0].section == "Pattern 4"
    assert "cribriform" in hits[0].text.lower()
    assert hits[0].score > 0 and hits[0].bm25_rank == 1
    # ranked by the share of the query's weight each passage holds, then by score
    keys = [(round(h.coverage or 0.0, 2), h.score) for h in hits]
    assert keys == sorted(keys, reverse=True)


@pytest.mark.parametrize(
    ("query", "citation"),
    [
        (
            "pseudopalisading necrosis microvascular proliferation",
            "tumors_cns_melanocytic.md § Glioblastoma multiforme (GBM)",
        ),
        (
            "perinuclear halos raisinoid nuclei plant-cell membranes",
            "tumors_genitourinary.md § Kidney Chromophobe (KICH)",
        ),
        (
            "nuclear grooves intranuclear pseudoinclusions psammoma bodies",
            "tumors_head_neck_endocrine.md § Thyroid carcinoma (THCA)",
        ),
        (
            "Zellballen salt-and-pepper chromatin sustentacular",
            "tumors_head_neck_endocrine.md § Pheochromocytoma and Paraganglioma (PCPG)",
        ),
        (
            "signet ring cells linitis plastica",
            "tumors_gastrointestinal.md § Stomach adenocarcinoma (STAD)",
        ),
        (
            "high-power field area varies, mitoses per mm2",
            "mitosis_grading.md § High-power fields and area",
        ),
        (
            "Nottingham tubule formation nuclear pleomorphism score",
            "mitosis_grading.md § Nottingham grade (breast)",
        ),
        ("parietal cells oxyntic glands foveolar", "normal_gastrointestinal.md § Stomach"),
        ("Paneth cells villi Peyer patches", "normal_gastrointestinal.md § Small Intestine"),
        (
            "tissue classes tumor lymphocytes necrosis normal",
            "general_he.md § Tissue classes: tumor, lymphocytes, necrosis, normal",
        ),
        ("3+4 versus 4+3 grade group", "gleason.md § Gleason 3+4 versus 4+3"),
        ("calretinin WT1 D2-40 pleura asbestos", "tumors_thoracic.md § Mesothelioma (MESO)"),
    ],
)
def test_realistic_queries_find_the_right_section(starter_kb, query, citation):
    assert citation in [h.citation for h in starter_kb.search(query, k=3)]


@pytest.mark.parametrize(
    "query",
    [
        '"unbalanced quote',
        "NOT AND OR",
        "a* OR (b",
        "NEAR(cribriform glands)",
        "section:Pattern",
        "^start -minus +plus",
        "'; DROP TABLE chunks; --",
        '""',
        "4+3=7?",
        "TTF-1/napsin-A (IHC)",
        "émbryo 🔬 µm²",
        "x" * 5000,
        "   ",
        "!!! ??? ...",
        "col:val AND ttf*",
        "{braces} [brackets] <tags>",
    ],
)
def test_punctuation_heavy_queries_never_raise(starter_kb, query):
    hits = starter_kb.search(query, k=3)
    assert isinstance(hits, list)


def test_fts_query_quotes_terms_and_drops_stopwords():
    assert fts_query("what is the TTF-1 status?") == '"ttf 1" OR "status"'
    assert fts_query("AND OR NOT") == '"not"'  # FTS operators become plain quoted words
    assert fts_query('say "hi"') == '"say" OR "hi"'
    assert fts_query("?!") is None
    assert fts_query("the of") == '"the" OR "of"'  # only stopwords: keep them rather than nothing


def test_search_rejects_bad_k(starter_kb):
    with pytest.raises(ConfigError):
        starter_kb.search("gleason", k=0)


def test_section_lookup_by_citation(starter_kb):
    hits = starter_kb.section("gleason.md", "ISUP grade groups")
    assert hits and all(h.citation == "gleason.md § ISUP grade groups" for h in hits)
    assert "4+3" in hits[0].text
    assert starter_kb.section("gleason.md", "No such section") == []


# ------------------------------------------------------------------ opening


def test_default_index_lives_under_slidescout_home(tmp_path, monkeypatch):
    monkeypatch.setenv("SLIDESCOUT_HOME", str(tmp_path / "home"))
    assert default_index_path() == tmp_path / "home" / "knowledge" / "index.sqlite"
    kb = KnowledgeBase.open()
    assert default_index_path().is_file()
    names = {s.name for s in kb.sources()}
    assert {"gleason.md", "mitosis_grading.md", "general_he.md"} <= names
    assert all(s.root == "starter" for s in kb.sources())
    ids = [h.chunk_id for h in kb.search("gleason pattern", k=3)]
    kb.close()
    again = KnowledgeBase.open()  # the starter corpus is not re-indexed when unchanged
    assert [h.chunk_id for h in again.search("gleason pattern", k=3)] == ids


def test_open_rejects_a_folder_and_a_corrupt_file(tmp_path):
    with pytest.raises(ConfigError, match="folder"):
        KnowledgeBase.open(tmp_path)
    bad = tmp_path / "bad.sqlite"
    bad.write_bytes(b"this is not a database" * 100)
    with pytest.raises(ConfigError, match="not a usable knowledge index"):
        KnowledgeBase.open(bad)


def test_old_schema_is_rebuilt_with_the_users_folders(tmp_path, refs):
    path = tmp_path / "index.sqlite"
    kb = KnowledgeBase.open(path, starter=False, embedder="")
    kb.add(refs)
    kb._conn.execute("UPDATE meta SET value='0' WHERE key='schema'")
    kb.close()
    kb = KnowledgeBase.open(path, starter=False, embedder="")
    assert kb.roots() == [str(refs.resolve())]
    assert kb.search("quokka")[0].source == "notes.md"


# ------------------------------------------------------------------ adding user folders


def test_empty_corpus_searches_cleanly(tmp_path):
    kb = KnowledgeBase.open(tmp_path / "empty.sqlite", starter=False, embedder="")
    assert len(kb) == 0 and kb.sources() == []
    assert kb.search("cribriform glands") == []


def test_add_indexes_md_txt_and_pdf_with_citations(tmp_path, refs):
    kb = KnowledgeBase.open(tmp_path / "i.sqlite", starter=False, embedder="")
    seen: list[str] = []
    report = kb.add(refs, progress=seen.append)
    assert sorted(report.indexed) == ["notes.md", "paper.pdf", "sub/plain.txt"]
    assert sorted(seen) == sorted(report.indexed)
    assert report.skipped == [] and report.removed == []
    assert report.chunks == len(kb) == 2 + 2 + 1
    assert kb.search("quokka")[0].citation == "notes.md § Zebra tumor"
    assert kb.search("narwhal crystals")[0].citation == "paper.pdf § p. 2"
    assert kb.search("axolotl")[0].citation == "paper.pdf § p. 1"
    assert kb.search("platypus")[0].citation == "sub/plain.txt § lines 1-4"
    assert kb.search("unicorn") == []  # hidden folders are ignored
    assert {s.name: s.chunks for s in kb.sources()} == {
        "notes.md": 2,
        "paper.pdf": 2,
        "sub/plain.txt": 1,
    }
    assert kb.roots() == [str(refs.resolve())]


def test_re_adding_updates_instead_of_duplicating(tmp_path, refs):
    kb = KnowledgeBase.open(tmp_path / "i.sqlite", starter=False, embedder="")
    kb.add(refs)
    count = len(kb)
    again = kb.add(refs)
    assert again.indexed == [] and sorted(again.unchanged) == [
        "notes.md",
        "paper.pdf",
        "sub/plain.txt",
    ]
    assert len(kb) == count and len(kb.search("quokka", k=10)) == 1

    (refs / "notes.md").write_text("## Zebra tumor\n\nNow about okapi stripes.\n", encoding="utf-8")
    (refs / "sub" / "plain.txt").unlink()
    changed = kb.add(refs)
    assert changed.indexed == ["notes.md"] and changed.removed == ["sub/plain.txt"]
    assert kb.search("quokka") == [] and kb.search("platypus") == []
    assert kb.search("okapi")[0].citation == "notes.md § Zebra tumor"
    assert len(kb) == 1 + 2


def test_adding_a_single_file_and_then_its_folder_does_not_duplicate(tmp_path, refs):
    kb = KnowledgeBase.open(tmp_path / "i.sqlite", starter=False, embedder="")
    kb.add(refs / "notes.md")
    kb.add(refs)
    assert len(kb.search("quokka", k=10)) == 1
    assert len(kb.sources()) == 3


def test_unreadable_pdfs_are_skipped_with_a_warning(tmp_path, refs, caplog):
    (refs / "broken.pdf").write_bytes(b"%PDF-1.4 garbage without objects")
    make_pdf(refs / "scanned.pdf", [""])
    kb = KnowledgeBase.open(tmp_path / "i.sqlite", starter=False, embedder="")
    with caplog.at_level(logging.WARNING, logger="slidescout.knowledge"):
        report = kb.add(refs)
    skipped = {Path(s.path).name: s.reason for s in report.skipped}
    assert set(skipped) == {"broken.pdf", "scanned.pdf"}
    assert "not a readable PDF" in skipped["broken.pdf"]
    assert "no text layer" in skipped["scanned.pdf"]
    assert "broken.pdf" in caplog.text and "scanned.pdf" in caplog.text
    assert sorted(report.indexed) == ["notes.md", "paper.pdf", "sub/plain.txt"]


def test_missing_and_empty_folders_raise_clear_errors(tmp_path):
    kb = KnowledgeBase.open(tmp_path / "i.sqlite", starter=False, embedder="")
    with pytest.raises(ConfigError, match="not found"):
        kb.add(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no .md, .txt or .pdf"):
        kb.add(tmp_path / "empty")
    (tmp_path / "x.docx").write_text("x")
    with pytest.raises(ConfigError, match="not a .md"):
        kb.add(tmp_path / "x.docx")


def test_remove_forgets_a_folder(tmp_path, refs):
    kb = KnowledgeBase.open(tmp_path / "i.sqlite", starter=False, embedder="")
    kb.add(refs)
    assert kb.remove(refs) == 3
    assert len(kb) == 0 and kb.roots() == []
    with pytest.raises(ConfigError, match="not in the knowledge base"):
        kb.remove(refs)
    leftover = (
        sqlite3.connect(tmp_path / "i.sqlite")
        .execute("SELECT count(*) FROM chunks_fts")
        .fetchone()[0]
    )
    assert leftover == 0


def test_refresh_rescans_added_folders(tmp_path, refs):
    kb = KnowledgeBase.open(tmp_path / "i.sqlite", starter=False, embedder="")
    kb.add(refs)
    (refs / "new.md").write_text("## New\n\nA capybara section.\n", encoding="utf-8")
    reports = kb.refresh()
    assert reports[0].indexed == ["new.md"]
    assert kb.search("capybara")[0].citation == "new.md § New"
