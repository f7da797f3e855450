"""Numeric criteria tables (corpus/criteria/*.yaml) answered exactly, and per-task criteria
cards (corpus/cards/*.yaml) for the system prompt (issue 26, 'Beyond')."""

from __future__ import annotations

import math

import pytest

from slidescout.errors import DatasetError
from slidescout.tools.knowledge import KnowledgeBase, load_graph, lookup
from slidescout.tools.knowledge.criteria import (
    Interval,
    Table,
    criteria_answer,
    criteria_card,
    load_cards,
    load_tables,
    table,
)
from slidescout.tools.knowledge.gleason import isup_grade_group, score_patterns


@pytest.fixture(scope="module")
def kb() -> KnowledgeBase:
    return KnowledgeBase.open(":memory:", embedder="")


def test_every_table_names_its_source_and_an_existing_section(kb):
    tables = load_tables()
    assert {t.id for t in tables} >= {
        "nottingham",
        "fnclcc",
        "who_isup_renal",
        "figo_endometrioid",
        "ajcc_oral_cavity_doi",
        "her2_ihc_breast",
        "isup_grade_groups",
    }
    for t in tables:
        assert t.source and t.names and t.parts
        source, _, section = t.section.partition(" § ")
        assert kb.section(source, section), f"{t.id}: no section {t.section}"


def test_single_input_bands_tile_their_range_without_gaps_or_overlaps():
    """Every value from the lowest bound up (every whole number for counts and scores) is in
    exactly one row: an exact table."""
    for t in load_tables():
        for part in t.parts:
            bands = [r.range for r in part.rows if r.range is not None]
            if not bands:
                continue
            low = min(b.low for b in bands)
            top = max(b.high if math.isfinite(b.high) else b.low + 10 for b in bands)
            step = 1.0 if part.integer else 0.25
            value = low
            while value <= top:
                holding = [b for b in bands if b.holds(value)]
                assert len(holding) == 1, (t.id, part.name, value)
                value += step


def test_two_input_rows_tile_every_combination():
    part = table("ajcc_oral_cavity_doi").parts[0]
    for doi in (0, 3, 5, 5.5, 10, 12, 30):
        for size in (0.5, 2, 2.1, 4, 4.5, 9):
            matching = [
                r for r in part.rows if r.when["doi"].holds(doi) and r.when["size"].holds(size)
            ]
            assert len(matching) == 1, (doi, size)


def test_interval_parsing_and_text():
    band = Interval.parse("(75, 100]")
    assert not band.holds(75) and band.holds(75.5) and band.holds(100)
    assert Interval.parse("[20, inf)").high == math.inf
    assert Interval.parse("[20, inf)").text() == "20 or more"
    with pytest.raises(ValueError):
        Interval.parse("10-19")


@pytest.mark.parametrize(
    ("query", "result"),
    [
        ("Nottingham total score 7", "grade 2 (moderately differentiated)"),
        ("Nottingham score 8", "grade 3 (poorly differentiated)"),
        ("Nottingham tubule formation 80%", "score 1"),
        ("FNCLCC necrosis 30%", "score 1"),
        ("FNCLCC necrosis 50%", "score 2"),
        ("FNCLCC total score 5", "grade 2"),
        ("FNCLCC mitoses 20 per 10 HPF", "score 3"),
        ("HER2 2+ breast carcinoma", "2+ (equivocal)"),
        ("HER2 score 0 in breast cancer", "0 (negative)"),
        ("WHO/ISUP grade 3 clear cell RCC", "nucleoli conspicuous and eosinophilic at 100x"),
        ("FIGO grade of endometrioid carcinoma with 30% solid growth", "FIGO grade 2"),
        ("ER 5% in breast cancer", "ER low positive"),
        ("p16 in 75% of cells, oropharyngeal carcinoma", "p16-positive"),
        ("oral cavity SCC, depth of invasion 7 mm, 1.5 cm", "pT2"),
        ("oral cavity SCC, DOI 4 mm, 3 cm", "pT2"),
        ("oral cavity SCC, DOI 12 mm, 5 cm", "pT4a (2018 revision"),
    ],
)
def test_lookup_answers_from_the_row_that_holds_the_value(kb, query, result):
    answer = lookup(query, kb=kb)
    assert answer.kind == "criteria", answer.text
    assert any(result in r["result"] for r in answer.data["results"]), answer.data
    assert answer.text.splitlines()[-1].startswith("Source: ")
    assert answer.hits[0].citation == table(answer.data["criteria"]).section


def test_both_nottingham_field_sizes_answer_a_mitotic_count(kb):
    answer = lookup("Nottingham mitoses 9 per 10 HPF", kb=kb)
    assert [r["result"] for r in answer.data["results"]] == ["score 1", "score 2"]


def test_without_a_value_the_whole_table_is_given(kb):
    answer = lookup("FNCLCC grading", kb=kb)
    assert answer.kind == "criteria" and answer.data["results"] == []
    for part in ("tumor differentiation", "tumor necrosis", "total score"):
        assert part in answer.text
    assert "Trojani et al., Int J Cancer 1984; Guillou et al., J Clin Oncol 1997" in answer.text


def test_a_table_is_not_used_for_another_organ():
    """HER2 scoring here is breast scoring: gastric cancer has its own rules."""
    assert criteria_answer("HER2 IHC 2+ in gastric cancer", load_graph()) is None
    assert criteria_answer("p16 block staining in cervical cancer", load_graph()) is None


def test_a_bad_table_file_is_a_dataset_error(tmp_path, monkeypatch):
    from slidescout.tools.knowledge import criteria

    (tmp_path / "bad.yaml").write_text("id: x\ntitle: y\n", encoding="utf-8")
    monkeypatch.setattr(criteria, "criteria_dir", lambda: tmp_path)
    criteria.load_tables.cache_clear()
    try:
        with pytest.raises(DatasetError, match="bad criteria file bad.yaml"):
            criteria.load_tables()
    finally:
        criteria.load_tables.cache_clear()
    assert Table  # the model is public


def test_the_panda_card_carries_the_biopsy_rule_and_the_grade_group_table():
    card = criteria_card("panda")
    assert card is not None and card.startswith("## ")
    assert "however small" in card and "no tertiary patterns on biopsies" in card
    for group in range(1, 6):
        assert f"grade group {group}:" in card
    assert "Epstein et al., 2016" in card and "Bulten et al., Nat Med 2022" in card
    assert criteria_card("tcga") is None and set(load_cards()) == {"panda"}


def test_the_card_agrees_with_the_gleason_arithmetic():
    """The card's example (mostly 4 with a focus of 5 on a biopsy) is what the code computes."""
    card = criteria_card("panda") or ""
    primary, secondary, _ = score_patterns([4, 4, 5], "biopsy")
    assert f"{primary}+{secondary}=9, grade group {isup_grade_group(primary, secondary)}" in card


# ---------------------------------------------------------------- the preset field


@pytest.fixture(scope="module")
def slide_path(tmp_path_factory: pytest.TempPathFactory):
    from slidefactory import make_tiff

    path = tmp_path_factory.mktemp("card") / "s.tiff"
    make_tiff(path, 3000, 2000, mpp=0.5)
    return path


def _first_instructions(preset: str, task: str, slide_path, tmp_path) -> tuple[str, dict]:
    import asyncio

    from slidescout.agents.loop import make_agent
    from slidescout.agents.models import resolve_model
    from slidescout.eval.ask import question_sample
    from slidescout.testing.fake_openai import FakeOpenAI, Reply
    from slidescout.traces.rundir import RunDir

    with FakeOpenAI([Reply(text="<response>1</response>")]) as srv:
        model = resolve_model("openai:gpt-5", base_url=srv.base_url, api="responses")
        agent = make_agent(model, preset=preset, max_steps=3)
        sample = question_sample(slide_path, "ISUP grade?", ["0", "1"]).model_copy(
            update={"task": task}
        )
        run = RunDir.create(
            tmp_path / f"run-{preset}-{task}", agent.config(), agent.prompt_hashes()
        )

        async def go() -> None:
            try:
                await agent.run(sample, run.recorder())
            finally:
                await model.aclose()

        asyncio.run(go())
        body = srv.bodies[0]
        # giant sends its system prompt as the first input item (as GIANT's code), others as
        # the request's instructions
        system = body.get("instructions") or body["input"][0]["content"]
        return system, agent.prompt_hashes()


@pytest.mark.parametrize(
    ("preset", "task", "has_card"),
    [
        ("scout", "panda", True),
        ("vitar", "panda", True),
        ("giant", "panda", False),
        ("scout", "tcga", False),
    ],
)
def test_presets_with_criteria_card_put_the_task_card_in_the_system_prompt(
    slide_path, tmp_path, preset, task, has_card
):
    instructions, hashes = _first_instructions(preset, task, slide_path, tmp_path)
    card = criteria_card("panda") or ""
    assert instructions.endswith(card) is has_card
    assert ("however small" in instructions) is has_card
    assert ("criteria_card:panda" in hashes) is (preset != "giant")
