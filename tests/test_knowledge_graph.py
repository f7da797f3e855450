"""Concept graph: name matching, features, comparisons, feature lookups and Gleason -> ISUP."""

from __future__ import annotations

import re

import pytest

from slidescout.errors import DatasetError
from slidescout.tools.knowledge import ConceptGraph, isup_grade_group, load_graph, starter_files
from slidescout.tools.knowledge.corpus import markdown_chunks
from slidescout.tools.knowledge.graph import build_graph, normalize_name


@pytest.fixture(scope="module")
def graph() -> ConceptGraph:
    return load_graph()


@pytest.fixture(scope="module")
def sections() -> dict[str, str]:
    out: dict[str, str] = {}
    for path in starter_files():
        _, chunks = markdown_chunks(path.read_text(encoding="utf-8"))
        for chunk in chunks:
            key = f"{path.name} § {chunk.section}"
            out[key] = out.get(key, "") + "\n" + chunk.text
    return out


def test_graph_has_the_expected_shape(graph):
    entities = graph.nodes("entity")
    kinds = [graph.graph.nodes[e]["entity_kind"] for e in entities]
    assert kinds.count("cancer") == 32 and kinds.count("normal") == 24
    assert len(graph.nodes("gleason_pattern")) == 5
    assert len(graph.nodes("gleason")) == 25
    for entity in entities:  # every entity hangs off an organ and has features
        assert any(k == "has_entity" for _, _, k in graph.graph.in_edges(entity, keys=True))
        assert graph.feature_nodes(entity)


@pytest.mark.parametrize(
    ("name", "label"),
    [
        ("LUAD", "Lung adenocarcinoma"),
        ("luad", "Lung adenocarcinoma"),
        ("Lung Adenocarcinoma", "Lung adenocarcinoma"),
        ("adenocarcinoma of the lung", "Lung adenocarcinoma"),
        ("lung adenocarcinomas", "Lung adenocarcinoma"),
        ("lung adenocarcinom", "Lung adenocarcinoma"),  # misspelt
        ("ccRCC", "Kidney renal clear cell carcinoma"),
        ("clear-cell renal cell carcinoma", "Kidney renal clear cell carcinoma"),
        ("GBM", "Glioblastoma multiforme"),
        ("glioblastoma", "Glioblastoma multiforme"),
        ("oesophageal carcinoma", "Esophageal carcinoma"),
        ("DLBCL", "Lymphoid Neoplasm Diffuse Large B-cell Lymphoma"),
        ("COAD", "Colon Rectum adenocarcinoma"),
        ("colorectal cancer", "Colon Rectum adenocarcinoma"),
        ("phaeochromocytoma", "Pheochromocytoma and Paraganglioma"),
        ("malignant mixed Müllerian tumour", "Uterine Carcinosarcoma"),
        ("oligodendroglioma", "Oligodendroglioma, IDH-mutant and 1p/19q-codeleted"),
        ("the thymoma", "Thymoma"),
        ("Small Intestine", "Small Intestine"),
        ("adrenal", "Adrenal Gland"),
        ("normal lung", "Normal lung"),
        ("gleason pattern 4", "Gleason pattern 4"),
    ],
)
def test_forgiving_name_matching(graph, name, label):
    node = graph.resolve(name, kinds=("entity", "organ", "gleason_pattern"))
    assert node is not None and graph.label(node) == label


def test_unknown_names_do_not_match(graph):
    assert graph.resolve("xylophone quasar") is None
    assert graph.resolve("") is None


def test_ambiguous_abbreviations_need_capitals_in_free_text(graph):
    assert graph.mentions("please read the slide", kinds=("entity",)) == []
    assert graph.mentions("READ and LUSC", kinds=("entity",)) == [
        "entity:colon_rectum_adenocarcinoma",
        "entity:lung_squamous_cell_carcinoma",
    ]


def test_features_of_lung_adenocarcinoma(graph):
    profile = graph.profile("lung adenocarcinoma")
    assert profile.code == "LUAD" and profile.kind == "cancer" and profile.organs == ["Lung"]
    assert "lepidic growth" in profile.features["architecture"]
    assert "TTF-1 positive" in profile.features["ihc"]
    assert "Lung squamous cell carcinoma (LUSC)" in profile.differentials
    assert profile.citation == "tumors_thoracic.md § Lung adenocarcinoma (LUAD)"


def test_features_of_an_organ_come_from_its_normal_histology(graph):
    profile = graph.profile("Kidney")
    assert profile.kind == "organ"
    assert {"glomeruli", "proximal and distal tubules"} <= set(profile.features["normal structure"])
    assert "Kidney Chromophobe (KICH)" in profile.entities and "Normal kidney" in profile.entities
    assert profile.citation == "normal_endocrine_urogenital.md § Kidney"


def test_distinguish_lists_unique_and_shared_features(graph):
    c = graph.distinguish("LUAD", "lung squamous cell carcinoma")
    assert "TTF-1 positive" in c.only_a and "lepidic growth" in c.only_a
    assert "keratinization" in c.only_b and "p40/p63 positive" in c.only_b
    assert "solid sheets" in c.shared
    assert not set(c.only_a) & set(c.only_b)
    assert c.listed_as_differential
    reverse = graph.distinguish("LUSC", "LUAD")
    assert reverse.only_a == c.only_b and reverse.only_b == c.only_a
    assert graph.distinguish("LUAD", "no such thing") is None


def test_entities_with_a_feature(graph):
    assert graph.entities_with("psammoma bodies") == [
        "Kidney renal papillary cell carcinoma (KIRP)",
        "Ovarian serous cystadenocarcinoma (OV)",
        "Thyroid carcinoma (THCA)",
    ]
    cribriform = graph.entities_with("cribriform")
    assert (
        "Gleason pattern 4" in cribriform
        and "Colon Rectum adenocarcinoma (COAD/READ)" in cribriform
    )
    halos = graph.entities_with("perinuclear halo")
    assert {
        "Kidney Chromophobe (KICH)",
        "Oligodendroglioma, IDH-mutant and 1p/19q-codeleted",
    } <= set(halos)
    assert graph.entities_with("unknown feature xyz") == []


EXPECTED_ISUP = {
    (3, 3): 1,
    (3, 4): 2,
    (4, 3): 3,
    (4, 4): 4,
    (3, 5): 4,
    (5, 3): 4,
    (4, 5): 5,
    (5, 4): 5,
    (5, 5): 5,
    (2, 5): None,
    (5, 2): None,
    # a pattern 1-2 beside a pattern 4-5 is not a valid grading (issue 15: 5+1 and 4+2 were GG1)
    (5, 1): None,
    (1, 5): None,
    (4, 2): None,
    (2, 4): None,
    (4, 1): None,
    (1, 4): None,
}


@pytest.mark.parametrize("primary", range(1, 6))
@pytest.mark.parametrize("secondary", range(1, 6))
def test_isup_mapping_for_every_gleason_pair(graph, primary, secondary):
    total = primary + secondary
    expected = EXPECTED_ISUP.get((primary, secondary), 1 if total <= 6 else None)
    assert isup_grade_group(primary, secondary) == expected
    grade = graph.gleason(primary, secondary)
    assert grade.total == total and grade.grade_group == expected


@pytest.mark.parametrize("total", range(2, 11))
def test_every_gleason_sum_maps_to_pairs(graph, total):
    pairs = graph.pairs_for_total(total)
    assert pairs and all(int(p[0]) + int(p[2]) == total for p, _ in pairs)
    groups = {g for p, g in pairs if min(int(p[0]), int(p[2])) >= 3}
    expected = {6: {1}, 7: {2, 3}, 8: {4}, 9: {5}, 10: {5}}.get(total)
    if expected is not None:
        assert groups == expected


def test_grade_groups_list_their_pairs(graph):
    assert graph.pairs_for_grade_group(1) == ["3+3"]
    assert graph.pairs_for_grade_group(2) == ["3+4"]
    assert graph.pairs_for_grade_group(3) == ["4+3"]
    assert graph.pairs_for_grade_group(4) == ["3+5", "4+4", "5+3"]
    assert graph.pairs_for_grade_group(5) == ["4+5", "5+4", "5+5"]
    assert graph.gleason(0, 0).grade_group == 0
    with pytest.raises(ValueError):
        isup_grade_group(6, 1)


def test_gleason_patterns_connect_to_their_features(graph):
    assert set(graph.profile("pattern 4").features["architecture"]) == {
        "cribriform architecture",
        "fused glands",
        "poorly formed glands",
        "glomeruloid glands",
    }
    c = graph.distinguish("Gleason pattern 4", "Gleason pattern 5")
    assert "comedonecrosis" in c.only_b and "fused glands" in c.only_a


def test_graph_features_are_described_in_the_cited_corpus_sections(graph, sections):
    """The graph stays consistent with the text: every feature of every entity appears (by its
    label or an alias) in the corpus section the entity cites."""
    problems = []
    for node in graph.nodes("entity") + graph.nodes("gleason_pattern"):
        citation = graph.citation(node)
        if citation not in sections:
            problems.append(f"{node}: missing section {citation}")
            continue
        text = f" {normalize_name(sections[citation])} "
        for feature in graph.feature_nodes(node):
            names = {normalize_name(a) for a in graph.aliases(feature)}
            if not any(f" {n} " in text for n in names if n):
                problems.append(f"{node}: {graph.label(feature)}")
    assert problems == []


def test_bad_concept_files_raise_dataset_errors(tmp_path):
    with pytest.raises(DatasetError, match="unknown feature"):
        build_graph(
            {"organs": {"lung": {}}, "entities": {"x": {"organs": ["lung"], "features": ["nope"]}}}
        )
    with pytest.raises(DatasetError, match="not found"):
        ConceptGraph.load(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("features: [unclosed", encoding="utf-8")
    with pytest.raises(DatasetError, match="not valid YAML"):
        ConceptGraph.load(bad)


def test_normalize_name():
    assert normalize_name("  Clear-Cell  RCC (ccRCC)! ") == "clear cell rcc ccrcc"
    assert normalize_name("Oesophageal tumour") == "esophageal tumor"
    assert re.fullmatch(r"[a-z0-9 ]*", normalize_name("Müllerian & B-cell"))


_ALLOWED_KEYS = {
    "features": {"label", "category", "aliases"},
    "organs": {"label", "aliases"},
    "entities": {
        "label",
        "kind",
        "code",
        "aliases",
        "organs",
        "source",
        "section",
        "features",
        "differentials",
        "who_name",
    },
}


def test_concepts_yaml_labels_load_whole():
    """An unquoted label with commas splits into extra keys (issue 15: 'TTF-1, PAX8 and
    thyroglobulin positive' loaded as 'TTF-1'): every mapping has only known keys, no empty values,
    and every label in the file is quoted."""
    import yaml

    from slidescout.tools.knowledge import starter_corpus_dir

    path = starter_corpus_dir() / "concepts.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    for section, allowed in _ALLOWED_KEYS.items():
        for key, spec in data[section].items():
            assert set(spec) <= allowed, f"{section}.{key} has stray keys {set(spec) - allowed}"
            assert all(value is not None for value in spec.values()), f"{section}.{key}"
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if "label:" in line and not line.lstrip().startswith("#"):
            assert 'label: "' in line, f"concepts.yaml line {number}: quote the label"
    labels = {
        data["features"][k]["label"]
        for k in ("thyroid_markers", "melanocytic_markers", "b_cell_markers", "muscle_markers")
    }
    assert labels == {
        "thyroglobulin positive",
        "SOX10, S100, Melan-A and HMB-45 positive",
        "CD20, CD79a and PAX5 positive",
        "SMA, desmin and h-caldesmon positive",
    }


def test_corrected_facts_from_issue_15(graph):
    """The concept-graph rows of issue 15's table of factual errors."""
    assert (
        "estrogen receptor positive" in graph.distinguish("HGSC", "endometrioid carcinoma").shared
    )
    luad_lusc = graph.distinguish("LUAD", "LUSC")
    assert not {"nests", "necrosis", "desmoplastic stroma"} & set(luad_lusc.only_b)
    kirc_kich = graph.distinguish("KIRC", "KICH")
    assert not {"solid sheets", "abundant eosinophilic cytoplasm"} & set(kirc_kich.only_b)
    assert "spindle cell fascicles" not in str(graph.profile("normal skeletal muscle").features)
    pcpg = graph.profile("carotid body tumor")
    assert pcpg is not None and {"Head and neck", "Retroperitoneum"} <= set(pcpg.organs)
    assert "Normal colon" in graph.entities_with("Paneth cells")
    ttf1 = graph.entities_with("TTF-1")
    assert {"Lung adenocarcinoma (LUAD)", "Thyroid carcinoma (THCA)"} <= set(ttf1)


def test_ties_are_broken_by_specificity_not_alphabet():
    """Two features share the alias 'TTF-1': the one whose label is the marker alone wins, even
    though its key sorts last (issue 15: ties were broken alphabetically)."""
    from slidescout.tools.knowledge.graph import build_graph

    data = {
        "features": {
            "a_thyroid_panel": {
                "label": "TTF-1, PAX8 and thyroglobulin positive",
                "category": "ihc",
                "aliases": ["ttf-1"],
            },
            "z_ttf1": {"label": "TTF-1 positive", "category": "ihc", "aliases": ["ttf-1"]},
        },
        "organs": {},
        "entities": {},
    }
    small = ConceptGraph(build_graph(data))
    assert small.resolve("TTF-1", kinds=("feature",)) == "feature:z_ttf1"
    assert (
        small.resolve("TTF-1, PAX8 and thyroglobulin positive", kinds=("feature",))
        == "feature:a_thyroid_panel"
    )


def test_corrected_graph_entries_from_issue_26(graph):
    """Oligodendroglioma has its own entry (IDH-mutant and 1p/19q-codeleted, no gemistocytes);
    the TCGA-named glioma entries carry their WHO CNS5 names (H3-wildtype for glioblastoma)."""
    oligo = graph.profile("oligodendroglioma")
    assert oligo is not None and oligo.label.startswith("Oligodendroglioma, IDH-mutant")
    assert {"IDH-mutant", "1p/19q codeletion"} <= set(oligo.features["molecular"])
    assert "gemistocytes" not in str(oligo.features)
    lgg = graph.profile("LGG")
    assert lgg is not None and "1p/19q" not in str(lgg.features)
    assert "CDKN2A/B homozygous deletion (grade 4)" in lgg.features["molecular"]
    gbm = graph.profile("glioblastoma")
    assert gbm is not None and gbm.who_name and "H3-wildtype" in gbm.who_name
    assert "H3-wildtype" in gbm.features["molecular"]
