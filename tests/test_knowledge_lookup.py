"""``lookup``: graph answers, search fallback, bounded text with citations, friendly failures."""

from __future__ import annotations

import pytest

from slidescout.errors import ToolError
from slidescout.tools.knowledge import MAX_TEXT_CHARS, KnowledgeBase, default_index_path, lookup


@pytest.fixture(scope="module")
def kb(tmp_path_factory) -> KnowledgeBase:
    return KnowledgeBase.open(tmp_path_factory.mktemp("kb") / "index.sqlite", embedder="")


def test_features_of_lung_adenocarcinoma(kb):
    result = lookup("features of lung adenocarcinoma", kb=kb)
    assert result.kind == "graph"
    assert "Lung adenocarcinoma (LUAD)" in result.text
    assert "lepidic growth" in result.text and "TTF-1 positive" in result.text
    assert "tumors_thoracic.md § Lung adenocarcinoma (LUAD)" in result.text
    assert (
        result.hits and result.hits[0].citation == "tumors_thoracic.md § Lung adenocarcinoma (LUAD)"
    )
    assert result.data["profile"]["code"] == "LUAD"


@pytest.mark.parametrize(
    "query",
    [
        "distinguish lung adenocarcinoma from lung squamous cell carcinoma",
        "How do I tell LUAD from LUSC?",
        "LUAD vs LUSC",
        "difference between lung adenocarcinoma and lung squamous cell carcinoma",
        "compare LUAD with LUSC",
    ],
)
def test_distinguish_questions(kb, query):
    result = lookup(query, kb=kb)
    assert result.kind == "graph"
    assert "Only LUAD:" in result.text and "Only LUSC:" in result.text and "Shared:" in result.text
    assert "How to tell apart:" in result.text and "p40" in result.text
    cited = {h.citation for h in result.hits}
    assert {
        "tumors_thoracic.md § Lung adenocarcinoma (LUAD)",
        "tumors_thoracic.md § Lung squamous cell carcinoma (LUSC)",
    } <= cited


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("ISUP grade for Gleason 4+3", "ISUP grade group 3"),
        ("ISUP grade for Gleason 3+4", "ISUP grade group 2"),
        ("What ISUP grade group is Gleason 4 + 3 = 7?", "ISUP grade group 3"),
        ("4+3", "ISUP grade group 3"),
        ("gleason 3+3", "ISUP grade group 1"),
        ("gleason 5+3", "ISUP grade group 4"),
        ("gleason 4+5", "ISUP grade group 5"),
        ("gleason score 9", "grade group 5"),
        ("Gleason score 7", "3+4 -> grade group 2; 4+3 -> grade group 3"),
        ("ISUP grade group 4", "4+4"),
        ("isup grade 0+0", "no carcinoma"),
        ("gleason 2+5", "no ISUP grade group"),
    ],
)
def test_gleason_questions(kb, query, expected):
    result = lookup(query, kb=kb)
    assert result.kind == "graph"
    assert expected in result.text
    assert "gleason.md § ISUP grade groups" in result.text
    assert any(h.citation == "gleason.md § ISUP grade groups" for h in result.hits)


def test_other_graph_questions(kb):
    psammoma = lookup("which tumors have psammoma bodies?", kb=kb)
    assert psammoma.kind == "graph" and "Thyroid carcinoma (THCA)" in psammoma.text
    kidney = lookup("tumors of the kidney", kb=kb)
    assert kidney.kind == "graph" and "Kidney Chromophobe (KICH)" in kidney.text
    pattern = lookup("gleason pattern 4", kb=kb)
    assert pattern.kind == "graph" and "cribriform architecture" in pattern.text
    assert "4+3 -> GG3" in pattern.text
    organ = lookup("features of Colon", kb=kb)
    assert organ.kind == "graph" and "straight evenly spaced crypts" in organ.text
    bare = lookup("ccRCC", kb=kb)
    assert bare.kind == "graph" and "CA IX positive" in bare.text


def test_text_search_fallback_with_citations(kb):
    result = lookup("cribriform glands gleason", k=3, kb=kb)
    assert result.kind == "search"
    assert len(result.hits) == 3
    assert result.hits[0].citation == "gleason.md § Pattern 4"
    assert result.text.startswith('References for "cribriform glands gleason":')
    assert "[1] gleason.md § Pattern 4" in result.text and "[3] " in result.text
    mitosis = lookup("Nottingham mitotic count cut-offs per mm2", kb=kb)
    assert "mitosis_grading.md § Nottingham grade (breast)" in mitosis.text


@pytest.mark.parametrize(
    ("query", "citation"),
    [
        (
            "histology of cribriform glands in prostate cancer grading",
            "tumors_genitourinary.md § Prostate adenocarcinoma (PRAD)",
        ),
        ("breast grading", "mitosis_grading.md § Nottingham grade (breast)"),
    ],
)
def test_a_query_mentioning_an_organ_is_not_hijacked_by_the_graph(kb, query, citation):
    result = lookup(query, kb=kb)
    assert result.kind == "search"
    assert citation in [h.citation for h in result.hits]


@pytest.mark.parametrize(
    "query",
    [
        "features of lung adenocarcinoma",
        "distinguish GBM from LGG",
        "ISUP grade for Gleason 4+3",
        "which tumors have necrosis",
        "lymphocytes necrosis tumor",
        "tumors of the lung",
        "features of Lung",
        "breast carcinoma mitotic count HPF area",
        "x" * 3000,
    ],
)
def test_text_is_bounded(kb, query):
    result = lookup(query, k=20, kb=kb)
    assert len(result.text) <= MAX_TEXT_CHARS


@pytest.mark.parametrize(
    "query",
    [
        '"unbalanced',
        "NOT AND OR",
        "a* OR (b",
        "'; DROP TABLE chunks; --",
        "?!",
        "4+",
        "+3",
        "vs",
        "features of",
    ],
)
def test_punctuation_never_crashes(kb, query):
    result = lookup(query, kb=kb)
    assert result.kind in ("graph", "search", "no_match", "not_covered")
    assert result.text


def test_no_match_and_empty_corpus_messages(kb, tmp_path):
    none = lookup("xylophone quasar", kb=kb)
    assert none.kind == "no_match" and none.hits == []
    assert "No reference matched" in none.text
    empty = KnowledgeBase.open(tmp_path / "empty.sqlite", starter=False, embedder="")
    result = lookup("cribriform glands", kb=empty)
    assert result.kind == "empty" and "slidescout kb add" in result.text
    graph_only = lookup("ISUP grade for Gleason 4+3", kb=empty)  # the graph still answers
    assert (
        graph_only.kind == "graph" and "grade group 3" in graph_only.text and graph_only.hits == []
    )


def test_bad_arguments_raise_tool_errors(kb):
    with pytest.raises(ToolError, match="needs a query"):
        lookup("   ", kb=kb)
    with pytest.raises(ToolError, match="between 1 and 20"):
        lookup("gleason", k=0, kb=kb)
    with pytest.raises(ToolError):
        lookup("gleason", k=21, kb=kb)


def test_default_knowledge_base_is_built_on_first_use(tmp_path, monkeypatch):
    monkeypatch.setenv("SLIDESCOUT_HOME", str(tmp_path / "home"))
    result = lookup("signet ring cells linitis plastica")
    assert result.kind == "search"
    assert result.hits[0].citation == "tumors_gastrointestinal.md § Stomach adenocarcinoma (STAD)"
    assert default_index_path().is_file()


def test_an_unusable_home_falls_back_to_an_in_memory_index(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("SLIDESCOUT_HOME", str(blocker))
    result = lookup("zellballen")
    assert result.kind == "search" and "Pheochromocytoma" in result.text


def test_concurrent_lookups_share_the_default_index(tmp_path, monkeypatch):
    from concurrent.futures import ThreadPoolExecutor

    monkeypatch.setenv("SLIDESCOUT_HOME", str(tmp_path / "home"))
    queries = ["cribriform glands gleason", "LUAD vs LUSC", "gleason 4+3", "zellballen"] * 5
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lookup, queries))
    assert [r.kind for r in results[:4]] == ["search", "graph", "graph", "search"]
    assert all(r.text == results[i % 4].text for i, r in enumerate(results))


# ---------------------------------------------------------------- issue 15: routing failures


def test_ttf1_lists_lung_and_thyroid(kb):
    result = lookup("which tumors show TTF-1", kb=kb)
    assert result.kind == "graph"
    assert "Lung adenocarcinoma (LUAD)" in result.text and "Thyroid carcinoma (THCA)" in result.text


@pytest.mark.parametrize(
    ("query", "mentioned"),
    [
        ("features of follicular thyroid carcinoma", "follicular carcinoma"),
        ("features of medullary thyroid carcinoma", "Medullary thyroid carcinoma"),
    ],
)
def test_a_thyroid_subtype_is_not_papillary_carcinoma(kb, query, mentioned):
    """'thyroid carcinoma' covers 2 of 3 words but not the distinguishing one: no PTC profile."""
    result = lookup(query, kb=kb)
    assert result.kind == "search"
    assert "has no section of its own" in result.text and mentioned in result.text
    assert "nuclear grooves" not in result.text and "Only" not in result.text


def test_anaplastic_thyroid_carcinoma_is_not_covered(kb):
    result = lookup("features of anaplastic thyroid carcinoma", kb=kb)
    assert result.kind == "not_covered"
    assert "Thyroid carcinoma (THCA)" in result.text  # the nearest entry, said as such


def test_clear_cell_carcinoma_is_not_liver_cell_carcinoma(kb):
    result = lookup("features of clear cell carcinoma", kb=kb)
    assert "Liver hepatocellular carcinoma" not in result.text
    assert "clear cell carcinoma" in result.text.lower()


@pytest.mark.parametrize(
    "query",
    [
        "features of Merkel cell carcinoma",
        "features of basal cell carcinoma",
        "features of anaplastic thyroid carcinoma",
        "what is angiosarcoma",
    ],
)
def test_uncovered_topics_say_so(kb, query):
    result = lookup(query, kb=kb)
    assert result.kind == "not_covered"
    assert result.text.startswith("Not covered:") and "Papillary" not in result.text


@pytest.mark.parametrize(
    "query",
    ["features of testicular germ cell tumor", "features of seminoma", "seminoma IHC"],
)
def test_germ_cell_tumors_are_covered(kb, query):
    result = lookup(query, kb=kb)
    assert result.kind == "graph" and "Testicular germ cell tumors (TGCT)" in result.text
    assert "OCT3/4" in result.text


def test_a_topic_mentioned_only_in_passing_is_said_to_have_no_section(kb):
    result = lookup("features of small cell lung carcinoma", kb=kb)
    assert result.kind == "search" and "has no section of its own" in result.text
    assert "small cell carcinoma" in result.text


def test_gist_gets_the_passage_that_names_it(kb):
    result = lookup("features of GIST", kb=kb)
    assert result.kind == "search" and "CD117 and DOG1" in result.text.split("\n[2] ")[0]


@pytest.mark.parametrize(
    "query",
    [
        "features of carcinoma",
        "features of lymphocytic infiltrate",
        "features of necrosis",
        "features of normal stroma",
    ],
)
def test_the_expert_planners_topics_get_passages(kb, query):
    """The offline expert planner asks these; they are topics for text search, not entities."""
    result = lookup(query, k=2, kb=kb)
    assert result.kind in ("search", "graph") and "has no section" not in result.text


@pytest.mark.parametrize(
    "query",
    [
        "what markers are positive in mesothelioma",
        "IHC of mesothelioma",
        "immunohistochemistry stains for mesothelioma",
        "mesothelioma markers",
    ],
)
def test_marker_questions_go_to_the_graph(kb, query):
    result = lookup(query, kb=kb)
    assert result.kind == "graph" and result.data and result.data.get("markers")
    assert result.text.startswith("Mesothelioma (MESO): markers.")
    assert "calretinin positive" in result.text and "WT1 positive" in result.text


@pytest.mark.parametrize(
    ("query", "needed"),
    [
        ("Nottingham mitotic count cut-offs", "0-9 mitoses per 10 HPF -> score 1"),
        ("pheochromocytoma IHC", "tyrosine hydroxylase"),
        ("GATA3 in urothelial carcinoma", "GATA3, uroplakin II/III"),
        ("GATA3 in pheochromocytoma", "GATA3 positive; keratin negative"),
    ],
)
def test_snippets_keep_the_asked_marker_or_number(kb, query, needed):
    assert needed in lookup(query, kb=kb).text


def test_readme_example_names_lung_squamous_cell_carcinoma(kb):
    """Issue 12 item 10: organ words outrank histotype words."""
    result = lookup("distinguish lung adenocarcinoma from squamous cell carcinoma", kb=kb)
    assert result.kind == "graph"
    assert result.text.startswith(
        "Lung adenocarcinoma (LUAD) vs Lung squamous cell carcinoma (LUSC)"
    )
    assert "Head and Neck" not in result.text.split("\n")[0]
    other = lookup("squamous cell carcinoma versus adenocarcinoma of the lung", kb=kb)
    assert "Lung squamous cell carcinoma (LUSC) vs Lung adenocarcinoma (LUAD)" in other.text


def test_every_answer_names_its_published_source(kb):
    for query in (
        "features of lung adenocarcinoma",
        "ISUP grade for Gleason 4+3",
        "cribriform glands",
    ):
        result = lookup(query, kb=kb)
        assert "WHO Classification of Tumours, 5th ed." in result.text or "ISUP 2014" in result.text
    hits = lookup("cribriform glands", kb=kb).hits
    assert hits and all(h.reference for h in hits)


def test_invalid_gleason_pairs_are_refused(kb):
    for pair in ("5+1", "4+2", "1+5"):
        result = lookup(f"gleason {pair}", kb=kb)
        assert (
            "not a valid pattern pair" in result.text
            and "grade group 1" not in result.text.split("\n")[0]
        )


@pytest.mark.parametrize(
    ("query", "answer"),
    [
        (
            "neuroendocrine markers in pheochromocytoma",
            "Pheochromocytoma and Paraganglioma (PCPG): markers.",
        ),
        ("germ cell markers of seminoma", "Testicular germ cell tumors (TGCT): markers."),
    ],
)
def test_words_before_markers_say_which_markers_not_which_tumour(kb, query, answer):
    result = lookup(query, kb=kb)
    assert result.kind == "graph" and result.text.startswith(answer)
