"""The starter corpus covers every MultiPathQA TCGA and GTEx label, in sections and graph nodes."""

from __future__ import annotations

import ast
import csv
from pathlib import Path

import pytest

from slidescout.tools.knowledge import load_graph, read_document, starter_corpus_dir, starter_files

CSV_PATH = Path(__file__).parents[2] / "shared/data/multipathqa/MultiPathQA.csv"
TUMOR_PARTS = (
    "**Hallmarks.**",
    "**Architecture.**",
    "**Cytology.**",
    "**IHC.**",
    "**Differential.**",
)


def _labels(benchmark: str) -> list[str]:
    if not CSV_PATH.is_file():
        pytest.skip(f"MultiPathQA question file not found at {CSV_PATH}")
    with CSV_PATH.open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            if row["benchmark_name"] == benchmark:
                return list(ast.literal_eval(row["options"]))
    pytest.skip(f"no {benchmark} rows in {CSV_PATH}")


def _sections(prefix: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for path in starter_files():
        if path.name.startswith(prefix):
            for chunk in read_document(path).chunks:
                out[chunk.section] = out.get(chunk.section, "") + chunk.text
    return out


def test_starter_corpus_is_package_data():
    files = {p.name for p in starter_files()}
    assert {"gleason.md", "mitosis_grading.md", "general_he.md"} <= files
    assert len([f for f in files if f.startswith("tumors_")]) >= 5
    assert (starter_corpus_dir() / "concepts.yaml").is_file()


def test_every_tcga_label_has_a_section_and_a_graph_node():
    labels = _labels("tcga")
    assert len(labels) == 30
    sections = _sections("tumors_")
    graph = load_graph()
    for label in labels:
        matching = [s for s in sections if s.lower().startswith(label.lower() + " (")]
        assert len(matching) == 1, f"no corpus section for {label!r}"
        body = sections[matching[0]]
        assert all(part in body for part in TUMOR_PARTS), (
            f"{label}: section lacks one of {TUMOR_PARTS}"
        )
        node = graph.resolve(label, kinds=("entity",))
        assert node is not None and graph.label(node) == label
        assert graph.graph.nodes[node]["entity_kind"] == "cancer"
        assert graph.citation(node) == f"{graph.graph.nodes[node]['source']} § {matching[0]}"


def test_every_gtex_label_has_a_normal_histology_section_and_a_graph_node():
    labels = _labels("gtex")
    assert len(labels) == 20
    sections = _sections("normal_")
    graph = load_graph()
    for label in labels:
        assert label in sections, f"no normal histology section for {label!r}"
        assert "**Hallmarks.**" in sections[label] and "**Differential.**" in sections[label]
        organ = graph.resolve(label, kinds=("organ",))
        assert organ is not None and graph.label(organ) == label
        profile = graph.profile_of(organ)
        assert any(e.startswith("Normal ") for e in profile.entities), (
            f"{label}: no normal tissue node"
        )
        assert profile.citation and profile.citation.endswith(f"§ {label}")


def test_grading_topics_are_covered():
    gleason = _sections("gleason")
    for number in range(1, 6):
        assert f"Pattern {number}" in gleason
    assert "ISUP grade groups" in gleason and "Gleason 3+4 versus 4+3" in gleason
    isup = gleason["ISUP grade groups"]
    for line in (
        "3+4=7",
        "4+3=7",
        "Grade group 4: Gleason score 8",
        "Grade group 5: Gleason score 9 or 10",
    ):
        assert line in isup
    mitosis = _sections("mitosis")
    assert {
        "Nottingham grade (breast)",
        "High-power fields and area",
        "Recognising mitotic figures",
    } <= set(mitosis)
    general = _sections("general_he")
    for topic in (
        "Nuclear size and pleomorphism",
        "Necrosis",
        "Lymphocytic infiltrates",
        "Tissue classes: tumor, lymphocytes, necrosis, normal",
    ):
        assert topic in general


def test_corrected_corpus_text_from_issue_15():
    """The Markdown rows of issue 15's table of factual errors stay corrected."""
    from slidescout.tools.knowledge import starter_corpus_dir

    def text(name: str) -> str:
        return " ".join((starter_corpus_dir() / name).read_text(encoding="utf-8").split())

    head_neck = text("tumors_head_neck_endocrine.md")
    assert "at least three times as tall as wide" in head_neck and "30% of tumor cells" in head_neck
    assert "two to three times" not in head_neck
    assert "GAPP uses" in head_neck and "not a mitotic count" in head_neck
    assert "mostly the middle third" in text("tumors_gastrointestinal.md")
    assert "muscle-invasive only" in text("tumors_genitourinary.md")
    kidney = text("normal_endocrine_urogenital.md")
    assert "medulla forms pyramids" in kidney and "arranged in rays" not in kidney
