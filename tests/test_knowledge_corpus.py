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


def _section_text(source: str, section: str) -> tuple[str, str]:
    """(body without its Source line, the Source line) of one corpus section, on one line."""
    from slidescout.tools.knowledge.corpus import section_source, without_source

    matching = [
        c for c in read_document(starter_corpus_dir() / source).chunks if c.section == section
    ]
    assert matching, f"no section {source} § {section}"
    body = " ".join(" ".join(without_source(c.text) for c in matching).split())
    return body, section_source(matching[0].text)


# (file, section, phrases the body must carry, phrases it must not, what its Source line names)
ISSUE_26_ROWS = [
    (
        "tumors_genitourinary.md",
        "Kidney renal clear cell carcinoma (KIRC)",
        ["2 nucleoli conspicuous and eosinophilic at 400x, visible but not prominent at 100x"],
        ["visible at 400x but not at 100x"],
        ["Delahunt et al., Am J Surg Pathol 2013", "vol. 8"],
    ),
    (
        "tumors_gynecologic_breast.md",
        "Breast invasive carcinoma (BRCA)",
        [
            "Medullary carcinoma is no longer a special type",
            "TIL-rich end of invasive carcinoma of no special type",
            "2+ (equivocal)",
            "reflexed to in situ hybridisation",
            'ER 1-10% is reported as "ER low positive"',
        ],
        ["and carcinoma with medullary pattern"],
        [
            "vol. 2: Breast Tumours (2019)",
            "Wolff et al., 2018; update 2023",
            "Allison et al., 2020",
        ],
    ),
    (
        "tumors_head_neck_endocrine.md",
        "Thyroid carcinoma (THCA)",
        [
            "NIFTP (non-invasive follicular thyroid neoplasm with papillary-like nuclear features) is not a carcinoma",
            "psammoma bodies",
            "30% or more",
            "tumor necrosis, and high mitotic activity",
        ],
        ["an encapsulated, non-invasive form is called NIFTP"],
        ["vol. 10", "Nikiforov et al., JAMA Oncol 2016"],
    ),
    (
        "tumors_cns_melanocytic.md",
        "Glioblastoma multiforme (GBM)",
        [
            "glioblastoma, IDH-wildtype",
            "IDH-wildtype and H3-wildtype",
            "Subtypes: giant cell glioblastoma",
        ],
        ["Variants:"],
        ["vol. 6: Central Nervous System Tumours (2021)"],
    ),
    (
        "tumors_mesenchymal_lymphoid.md",
        "Sarcoma (SARC)",
        ["SS18::SSX fusion", "SSX C-terminus antibodies", "TLE1 is sensitive but not specific"],
        ["Synovial sarcoma: TLE1 and SS18-SSX fusion"],
        ["vol. 3", "Baranov et al., Am J Surg Pathol 2020"],
    ),
    (
        "tumors_gynecologic_breast.md",
        "Uterine Corpus Endometrial Carcinoma (UCEC)",
        [
            "binary grade: low grade (FIGO grades 1 and 2) and high grade (FIGO grade 3)",
            "molecular class",
        ],
        [],
        ["vol. 4", "Berek et al., Int J Gynecol Obstet 2023"],
    ),
    (
        "tumors_genitourinary.md",
        "Bladder Urothelial Carcinoma (BLCA)",
        ["Subtypes (WHO 2022): micropapillary"],
        ["Variants:"],
        ["vol. 8"],
    ),
    (
        "tumors_cns_melanocytic.md",
        "Brain Lower Grade Glioma (LGG)",
        ["homozygous CDKN2A/B deletion makes it CNS WHO grade 4"],
        [],
        ["vol. 6"],
    ),
    (
        "tumors_mesenchymal_lymphoid.md",
        "Lymphoid Neoplasm Diffuse Large B-cell Lymphoma (DLBC)",
        [
            "MYC in 40% or more and BCL2 in 50% or more",
            "with MYC and BCL2 rearrangements",
            "MYC with BCL6 rearrangement alone no longer belongs to it",
        ],
        [],
        ["vol. 11: Haematolymphoid Tumours (2022)", "Swerdlow et al., Blood 2016"],
    ),
    (
        "tumors_head_neck_endocrine.md",
        "Head and Neck squamous cell carcinoma (HNSC)",
        [
            "depth of invasion (DOI",
            "DOI 5 mm or less, more than 5 to 10 mm, more than 10 mm",
            "70% or more of tumor cells show strong nuclear and cytoplasmic staining",
            "p16-positive (HPV-associated) carcinoma is staged in its own AJCC 8th ed. chapter",
        ],
        ["Variants:"],
        ["AJCC Cancer Staging Manual, 8th ed.", "Lewis et al., Arch Pathol Lab Med 2018"],
    ),
    (
        "mitosis_grading.md",
        "Mitotic counts in other grading systems",
        [
            "Grade 3 (anaplastic): 20 or more mitoses per 10 HPF",
            "brain invasion",
            "TERT promoter mutation or a homozygous CDKN2A/B deletion",
        ],
        [],
        ["vol. 6, Central Nervous System Tumours (2021, meningioma, glioma)"],
    ),
    (
        "tumors_gynecologic_breast.md",
        "Ovarian serous cystadenocarcinoma (OV)",
        ["or cytoplasmic staining"],
        ["(diffuse strong or completely absent)"],
        ["Köbel et al., J Pathol Clin Res 2016"],
    ),
    (
        "normal_endocrine_urogenital.md",
        "Kidney",
        ["and the medulla as a second, smaller kidney site"],
        [],
        ["GTEx Consortium, Science 2020"],
    ),
    (
        "general_he.md",
        "Lymphocytic infiltrates",
        ["Thymoma type B1/B2"],
        [],
        [
            "vol. 1, Digestive System Tumours",
            "vol. 5, Thoracic Tumours",
            "vol. 11, Haematolymphoid",
        ],
    ),
    (
        "mitosis_grading.md",
        "Ki-67 proliferation index",
        ["Burkitt lymphoma"],
        [],
        ["vol. 11, Haematolymphoid Tumours (2022, lymphoma values)"],
    ),
    (
        "tumors_cns_melanocytic.md",
        "Oligodendroglioma, IDH-mutant and 1p/19q-codeleted (LGG)",
        ["IDH1 or IDH2 mutation together with whole-arm codeletion of chromosomes 1p and 19q"],
        ["gemistocytes with plump"],
        ["vol. 6: Central Nervous System Tumours (2021)"],
    ),
]


@pytest.mark.parametrize(("source", "section", "has", "lacks", "cites"), ISSUE_26_ROWS)
def test_corrected_corpus_text_from_issue_26(source, section, has, lacks, cites):
    """Each row of issue 26's table: the corrected text, and the source it names."""
    body, reference = _section_text(source, section)
    for phrase in has:
        assert phrase in body, f"{section}: missing {phrase!r}"
    for phrase in lacks:
        assert phrase not in body, f"{section}: still says {phrase!r}"
    for name in cites:
        assert name in reference, f"{section}: Source line lacks {name!r}"


def test_no_tumour_section_says_variants():
    """WHO 5th ed. says 'subtypes' for morphological kinds of a tumour (issue 26)."""
    for path in starter_files():
        if path.name.startswith("tumors_"):
            assert "Variants:" not in path.read_text(encoding="utf-8"), path.name
