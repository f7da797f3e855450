"""One path from a question to its record: ``ask`` and ``eval`` share the sample type, the runner,
the parser and the ``results.jsonl`` shape; the patch baseline votes on parsed answers."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from slidefactory import make_tiff
from test_eval_runner_data import make_mpqa

from slidescout.agents.baselines import majority_answer
from slidescout.agents.config import AgentConfig
from slidescout.agents.loop import Agent, make_agent
from slidescout.core.parsing import ParsedAnswer, parse_answer
from slidescout.core.recorder import MemoryRecorder
from slidescout.core.sample import Sample
from slidescout.eval import load_multipathqa
from slidescout.eval.ask import arun, question_sample
from slidescout.eval.runner import run_eval
from slidescout.testing.scripted import FunctionModel, reply, script

ECHO_THEN_FINAL = (
    'The prompt asks for JSON such as {"answer": 2}. Having looked at the slide, '
    'the cells are hepatocytes.\n```json\n{"answer": 2}\n```\n'
    'On reflection the clear cytoplasm settles it:\n```json\n{"answer": 3}\n```'
)


@pytest.fixture(scope="module")
def mpqa(tmp_path_factory) -> tuple[Path, Path]:
    return make_mpqa(tmp_path_factory.mktemp("mpqa"), n_tcga=1, n_gtex=0, missing=0)


def test_ask_and_eval_write_the_same_record(mpqa, tmp_path: Path) -> None:
    csv_path, slides = mpqa
    sample = load_multipathqa(csv_path, slides_dir=slides).samples[0]
    options = sample.options

    asked = asyncio.run(
        arun(
            sample.image_path,
            "What is the primary diagnosis?",
            options,
            model=FunctionModel(script(reply(ECHO_THEN_FINAL))),
            out=tmp_path / "ask",
        )
    )

    def factory(budget, repeat):  # noqa: ANN001, ANN202
        return make_agent(FunctionModel(script(reply(ECHO_THEN_FINAL))), budget=budget)

    asyncio.run(run_eval([sample], out=tmp_path / "eval", agent_factory=factory))
    ask_rec = json.loads((tmp_path / "ask" / "results.jsonl").read_text())
    eval_rec = json.loads((tmp_path / "eval" / "results.jsonl").read_text())
    assert set(ask_rec) == set(eval_rec)
    # the echoed example {"answer": 2} comes first; the final {"answer": 3} is the answer
    assert ask_rec["predicted"] == eval_rec["predicted"] == 3
    assert asked.choice == ask_rec["answer_label"] == eval_rec["answer_label"] == options[2]
    assert asked.status == "answered" and asked.error is None
    assert asked.record.to_json_dict() == ask_rec


def test_ask_failure_carries_its_reason(tmp_path: Path) -> None:
    slide = tmp_path / "s.tiff"
    make_tiff(slide, 1024, 768, mpp=0.5)

    def boom(_req, _turn):  # noqa: ANN001, ANN202
        raise RuntimeError("the server went away")

    res = asyncio.run(
        arun(
            slide,
            "Diagnosis?",
            ["A", "B"],
            model=FunctionModel(boom),
            out=tmp_path / "r",
            max_steps=3,
        )
    )
    assert res.status == "error" and res.choice is None
    assert res.error is not None and "the server went away" in res.error
    assert res.record.error == res.error and res.trace is not None and res.trace.error == res.error


def _isup(grade: int) -> str:
    return (
        '```json\n{"primary_pattern": 4, "secondary_pattern": 4, "total_score": 8, '
        f'"isup_grade": {grade}}}\n```'
    )


def test_patch_vote_on_panda_picks_the_majority_grade(tmp_path: Path) -> None:
    slide = tmp_path / "prostate.tiff"
    make_tiff(slide, 4096, 3072, mpp=0.5, pattern="tissue")
    replies = [reply(_isup(4)) for _ in range(29)] + [reply(_isup(1))]
    replies.insert(
        0, replies.pop()
    )  # the lone ISUP 1 comes first: a raw-text vote would tie-break to it
    sample = Sample(
        sample_id="panda/x",
        task="panda",
        question="Grade this biopsy.",
        image_path=str(slide),
        image_paths=[str(slide)],
        answer_format="isup_json",
        answer=4,
        answer_label="4",
        metric="balanced_accuracy",
    )
    agent = Agent(FunctionModel(script(*replies)), AgentConfig(preset="patch", seed=3))
    recorder = MemoryRecorder()
    trace = asyncio.run(agent.run(sample, recorder))
    assert trace.status == "answered" and trace.n_steps == 30
    parsed = parse_answer(trace.answer, sample)
    assert parsed.ok and parsed.value == 4
    assert "'4': 29" in trace.rationale and "'1': 1" in trace.rationale
    assert (
        recorder.trace is trace and len(recorder.images) == 30
    )  # 30 distinct patches, stored by hash


def test_majority_ignores_unparsed_and_breaks_ties_by_first() -> None:
    a = ParsedAnswer(value=2, ok=True)
    b = ParsedAnswer(value=5, ok=True)
    bad = ParsedAnswer(ok=False, error="no answer")
    won = majority_answer([(bad, 0), (bad, 1), (bad, 2), (b, 3), (a, 4)])
    assert won is not None and won[0].value == 5 and won[1] == 3
    assert majority_answer([(bad, 0)]) is None


def test_question_sample_refuses_bad_questions(tmp_path: Path) -> None:
    from slidescout.errors import ConfigError

    with pytest.raises(ConfigError, match="empty"):
        question_sample(tmp_path / "s.tiff", "   ", ["A", "B"])
    with pytest.raises(ConfigError, match="two or more"):
        question_sample(tmp_path / "s.tiff", "Diagnosis?", ["A"])
    s = question_sample(tmp_path / "s.tiff", "Diagnosis?", ["A", "B"], answer="B")
    assert s.answer == 2 and s.answer_label == "B" and s.answer_format == "index"
    assert question_sample(tmp_path / "s.tiff", "Describe it.").answer_format == "free"


def test_a_schema_1_0_trace_still_reads(tmp_path: Path) -> None:
    from slidescout.core.trace import TRACE_SCHEMA_VERSION, Trace, load_trace

    old = {
        "schema_version": "1.0",
        "sample_id": "s",
        "question": "q",
        "model": "m",
        "preset": "giant",
        "slide": {"path": "x.svs"},
        "status": "error",
        "events": [{"kind": "error", "id": "e1", "message": "slide unreadable", "fatal": True}],
    }
    path = tmp_path / "s.json"
    path.write_text(json.dumps(old))
    trace = load_trace(path)
    assert trace.schema_version == "1.0" and trace.error is None and trace.repeat == 0
    assert TRACE_SCHEMA_VERSION == "1.1" and Trace.model_validate(old).status == "error"


def test_a_sample_with_no_truth_is_recorded_unscored(mpqa, tmp_path: Path) -> None:
    """``ask`` has no ground truth: ``correct`` is null (not false), and the run is not scored."""
    from slidescout.eval.metrics import score_run
    from slidescout.eval.report import load_run, report_data
    from slidescout.traces.viewer.runindex import correctness

    csv_path, slides = mpqa
    sample = load_multipathqa(csv_path, slides_dir=slides).samples[0]
    asyncio.run(
        arun(
            sample.image_path,
            "What is the primary diagnosis?",
            sample.options,
            model=FunctionModel(script(reply(ECHO_THEN_FINAL))),
            out=tmp_path / "ask",
        )
    )
    rec = json.loads((tmp_path / "ask" / "results.jsonl").read_text())
    assert rec["status"] == "answered" and rec["truth"] is None and rec["correct"] is None
    assert score_run([rec]) == {} and correctness(rec) is None
    assert report_data(load_run(tmp_path / "ask"))["scores"] == {}
