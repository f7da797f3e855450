"""The think-act-rethink loop: budgets, errors, final answers, context, rethink, replay, privacy."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from slidefactory import is_label_colour, is_macro_colour, make_svs, make_tiff

from slidescout.agents.budget import Budget
from slidescout.agents.config import AgentConfig
from slidescout.agents.loop import Agent, parse_rethink, parse_supporting_steps
from slidescout.agents.models.replay import ReplayModel
from slidescout.core.messages import ImagePart, ModelResponse, ToolMessage, Usage, UserMessage
from slidescout.core.trace import ModelCallEvent, ToolEvent, Trace
from slidescout.errors import ModelError
from slidescout.eval.ask import question_sample
from slidescout.testing.scripted import FunctionModel, reply, script
from slidescout.traces.rundir import RunDir, load_trace

ZOOM = ("slide_zoom", {"x0": 1000, "y0": 1000, "w": 2000, "h": 2000})
ANSWER = reply('The region shows tumour.\n```json\n{"answer": 1}\n```')


@pytest.fixture(scope="module")
def slide_path(tmp_path_factory) -> Path:
    p = tmp_path_factory.mktemp("slides") / "s.tiff"
    make_tiff(p, 6000, 4000, mpp=0.25)
    return p


def _run(model, slide_path, tmp_path, preset="scout", budget=None, tools=None, **kw) -> Trace:
    if tools is not None:
        kw["tools"] = ",".join(tools)
    agent = Agent(model, AgentConfig(preset=preset, **kw), budget=budget)
    sample = question_sample(slide_path, "What is the diagnosis?", ["Tumour", "Normal"])
    run = RunDir.create(tmp_path / "run", agent.config(), agent.prompt_hashes())
    return asyncio.run(agent.run(sample, run.recorder()))


def test_zoom_then_answer_writes_a_complete_trace(slide_path, tmp_path):
    model = FunctionModel(script(reply("Look closer.", ZOOM), reply("Closer still.", ZOOM), ANSWER))
    trace = _run(model, slide_path, tmp_path)
    assert trace.status == "answered"
    assert '"answer": 1' in trace.answer
    tools = trace.tool_events
    assert len(tools) == 2 and all(t.error is None for t in tools)
    assert tools[0].images[0].box == (1000, 1000, 2000, 2000)
    # the budget is stated the GIANT way: tool results count down the calls left
    results = [m for m in model.requests[2].messages if isinstance(m, ToolMessage)]
    texts = [
        c.text for r in results for part in r.results for c in part.content if hasattr(c, "text")
    ]
    assert any("18 views remain" in t for t in texts)
    # system prompt states the level-0 size and the step budget
    assert "6000 x 4000" in model.requests[0].messages[0].content
    assert "19 views in all" in model.requests[0].messages[0].content
    # every image is stored once by hash and the trace round-trips
    run = tmp_path / "run"
    for ref in trace.images():
        assert (run / "blobs" / f"{ref.sha256}.jpg").exists()
    again = load_trace(run / "traces" / "s.json")
    assert again.model_dump() == Trace.model_validate_json(trace.to_json()).model_dump()
    assert again.usage.cost_usd == pytest.approx(0.003)


def test_last_step_withdraws_tools_and_forces_an_answer(slide_path, tmp_path):
    def fn(req, turn):
        return ANSWER if req.tool_choice == "none" else reply("", ZOOM)

    model = FunctionModel(fn)
    trace = _run(model, slide_path, tmp_path, max_steps=4)
    assert trace.status == "answered"
    assert [r.tool_choice for r in model.requests] == ["auto", "auto", "auto", "none"]
    last = model.requests[-1]
    assert last.tool_choice == "none"
    assert "final step" in last.messages[-1].parts[0].text
    assert trace.events[-1].kind == "answer" and trace.events[-1].forced


def test_model_that_never_answers_ends_with_max_steps(slide_path, tmp_path):
    model = FunctionModel(lambda req, turn: reply("", ZOOM))
    trace = _run(model, slide_path, tmp_path, max_steps=3)
    assert trace.status == "max_steps"
    assert trace.n_steps == 3  # no rerun of the trajectory


def test_malformed_calls_become_error_observations_then_error_status(slide_path, tmp_path):
    bad = [
        reply("", ("no_such_tool", {})),
        reply("", ("slide_zoom", {"x0": "left", "y0": 0, "w": 10, "h": 10})),
        reply("", ("slide_zoom", {"x0": 10**9, "y0": 10**9, "w": 10, "h": 10})),
    ]
    model = FunctionModel(script(*bad))
    trace = _run(model, slide_path, tmp_path, max_errors=3)
    assert trace.status == "error"
    errs = [t.error for t in trace.tool_events]
    assert "unknown tool" in errs[0] and "slide_zoom" in errs[0]
    assert "x0" in errs[1]
    assert "6000" in errs[2]  # names the slide size
    # the model saw each error as an observation
    seen = model.requests[1].messages[-1]
    assert isinstance(seen, ToolMessage) and seen.results[0].is_error
    assert (tmp_path / "run" / "traces" / "s.json").exists()


def test_errors_reset_after_a_good_step(slide_path, tmp_path):
    seq = [
        reply("", ("nope", {})),
        reply("", ("nope", {})),
        reply("", ZOOM),
        reply("", ("nope", {})),
        ANSWER,
    ]
    trace = _run(FunctionModel(script(*seq)), slide_path, tmp_path, max_errors=3)
    assert trace.status == "answered"


def test_unexpected_tool_exception_is_recorded(slide_path, tmp_path, monkeypatch):
    from slidescout.tools.registry import default_registry

    zoom = default_registry().get("slide_zoom")

    async def boom(args, ctx):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(zoom, "invoke", boom)
    trace = _run(FunctionModel(script(reply("", ZOOM), ANSWER)), slide_path, tmp_path)
    assert trace.status == "answered"
    ev = trace.tool_events[0]
    assert ev.internal_error == "RuntimeError: disk on fire"
    assert "failed unexpectedly" in ev.error


def test_model_error_ends_sample_with_error_and_keeps_trace(slide_path, tmp_path):
    def fn(req, turn):
        if turn == 1:
            raise ModelError("503 from provider after 4 attempts", retryable=True)
        return reply("", ZOOM)

    trace = _run(FunctionModel(fn), slide_path, tmp_path)
    assert trace.status == "error"
    assert any(e.kind == "error" and "503" in e.message for e in trace.events)
    assert load_trace(tmp_path / "run" / "traces" / "s.json").status == "error"


@pytest.mark.parametrize(
    "budget,status", [(Budget(usd=0.0025), "budget_usd"), (Budget(tokens=250), "budget_tokens")]
)
def test_budgets_stop_with_a_clear_status(slide_path, tmp_path, budget, status):
    model = FunctionModel(lambda req, turn: reply("", ZOOM))  # each call: 120 tokens, $0.001
    trace = _run(model, slide_path, tmp_path, budget=budget)
    assert trace.status == status
    assert trace.n_steps == 3
    assert any(e.kind == "note" and "budget" in e.message for e in trace.events)


def test_time_budget(slide_path, tmp_path):
    async def slow(req, turn):
        await asyncio.sleep(0.3)
        return reply("", ZOOM)

    trace = _run(FunctionModel(slow), slide_path, tmp_path, sample_seconds=0.5)
    assert trace.status == "budget_time"


def test_unknown_cost_is_not_zero(slide_path, tmp_path):
    model = FunctionModel(
        script(ANSWER), usage=Usage(input_tokens=10, output_tokens=5, cost_usd=None)
    )
    trace = _run(model, slide_path, tmp_path)
    assert trace.usage.cost_usd is None


def test_context_keeps_overview_and_last_k_images(slide_path, tmp_path):
    model = FunctionModel(lambda req, turn: reply("", ZOOM) if turn < 5 else ANSWER)
    trace = _run(model, slide_path, tmp_path, preset="giant", keep_images=2)  # prune_block 0
    last = model.requests[-1]
    images = [
        p
        for m in last.messages
        if isinstance(m, UserMessage)
        for p in m.parts
        if isinstance(p, ImagePart)
    ]
    images += [
        c
        for m in last.messages
        if isinstance(m, ToolMessage)
        for r in m.results
        for c in r.content
        if isinstance(c, ImagePart)
    ]
    assert len(images) == 3  # overview + 2
    assert images[0].image.label == "overview"
    notes = [
        c.text
        for m in last.messages
        if isinstance(m, ToolMessage)
        for r in m.results
        for c in r.content
        if getattr(c, "text", "").startswith("[image no longer shown")
    ]
    assert len(notes) == 3 and "x=1000" in notes[0]
    calls = [e for e in trace.events if isinstance(e, ModelCallEvent)]
    assert [c.images_in_context for c in calls] == [1, 2, 3, 3, 3, 3]
    assert calls[-1].request_bytes < calls[2].request_bytes * 1.5  # bounded request size


def test_vitar_records_rethink_and_supporting_steps(slide_path, tmp_path):
    rt = '<rethink>{"hypothesis": "tumour", "differential": ["normal"], "confidence": 0.7, "needed_evidence": "nuclei"}</rethink>'
    seq = [
        reply(rt, ZOOM),
        reply('Large pleomorphic nuclei. Supporting steps: 1\n```json\n{"answer": 1}\n```'),
    ]
    trace = _run(
        FunctionModel(script(*seq)),
        slide_path,
        tmp_path,
        preset="vitar",
        tools=["slide_zoom", "measure"],
    )
    first = trace.model_calls[0]
    assert first.rethink.hypothesis == "tumour" and first.rethink.confidence == 0.7
    assert trace.events[-1].supporting_steps == [1]
    assert "<rethink>" in trace.messages[0].content or "rethink" in trace.messages[0].content


def test_parse_helpers():
    assert parse_rethink("x <rethink>{bad json}</rethink>") is None
    assert (
        parse_rethink('<rethink>{"hypothesis": "a", "confidence": 3}</rethink>').confidence == 1.0
    )
    assert parse_supporting_steps("Supporting steps: 2, 5 and 7") == [2, 5, 7]


def test_replay_reproduces_a_run(slide_path, tmp_path):
    model = FunctionModel(
        script(
            reply("zoom", ZOOM),
            reply("again", ("slide_zoom", {"x0": 0, "y0": 0, "w": 500, "h": 500})),
            ANSWER,
        )
    )
    first = _run(model, slide_path, tmp_path / "a")
    replay = ReplayModel(tmp_path / "a" / "run" / "traces" / "s.json")
    second = _run(replay, slide_path, tmp_path / "b")
    assert second.status == "answered" and second.answer == first.answer
    assert [e.images[0].sha256 for e in second.tool_events] == [
        e.images[0].sha256 for e in first.tool_events
    ]


def test_thumbnail_and_patch_baselines(slide_path, tmp_path):
    model = FunctionModel(lambda req, turn: ANSWER)
    trace = _run(model, slide_path, tmp_path / "t", preset="thumbnail")
    assert (
        trace.status == "answered"
        and trace.n_steps == 1
        and model.requests[0].tool_choice == "none"
    )
    ref = trace.images()[0]
    assert max(ref.width, ref.height) == 1024
    model2 = FunctionModel(lambda req, turn: ANSWER if turn % 3 else reply('{"answer": 2}'))
    trace2 = _run(model2, slide_path, tmp_path / "p", preset="patch", seed=1)
    assert trace2.n_steps == 30 and '"answer": 1' in trace2.answer
    assert all(i.width == 224 for i in trace2.images())


def test_privacy_no_label_no_key_in_any_file(tmp_path, monkeypatch):
    sentinel = "sk-SENTINEL-do-not-leak-1234"
    monkeypatch.setenv("OPENAI_API_KEY", sentinel)
    svs = make_svs(tmp_path / "p.svs", 3000, 2000)
    model = FunctionModel(
        script(reply("", ("slide_zoom", {"x0": 0, "y0": 0, "w": 3000, "h": 2000})), ANSWER)
    )
    _run(model, svs, tmp_path)
    run = tmp_path / "run"
    for f in run.rglob("*"):
        if f.is_file():
            assert sentinel.encode() not in f.read_bytes(), f
    for blob in (run / "blobs").glob("*.jpg"):
        img = np.asarray(Image.open(blob).convert("RGB"))
        assert is_label_colour(img).mean() < 0.01 and is_macro_colour(img).mean() < 0.01, blob
    manifest = json.loads((run / "manifest.json").read_text())
    assert sentinel not in json.dumps(manifest)


def test_bad_slide_is_an_error_sample_not_a_crash(tmp_path):
    bad = tmp_path / "bad.svs"
    bad.write_text("not a slide")
    trace = _run(FunctionModel(script(ANSWER)), bad, tmp_path)
    assert trace.status == "error"
    assert "bad.svs" in trace.events[0].message


def test_model_response_usage_accumulates(slide_path, tmp_path):
    def fn(req, turn):
        msg = ANSWER if turn == 2 else reply("", ZOOM)
        return ModelResponse(
            message=msg, usage=Usage(input_tokens=1000, output_tokens=10, cost_usd=0.01), model="m"
        )

    trace = _run(FunctionModel(fn), slide_path, tmp_path)
    assert trace.usage.input_tokens == 3000 and trace.usage.cost_usd == pytest.approx(0.03)
    assert isinstance(trace.tool_events[0], ToolEvent)


def test_run_given_a_run_dir_instead_of_a_recorder_raises_type_error(slide_path, tmp_path):
    """A programming error is raised, not recorded as the sample's ``error`` status."""
    agent = Agent(FunctionModel(script(ANSWER)), AgentConfig(preset="scout"))
    sample = question_sample(slide_path, "What is the diagnosis?", ["Tumour", "Normal"])
    run = RunDir.create(tmp_path / "run", agent.config(), agent.prompt_hashes())
    with pytest.raises(TypeError, match=r"run_dir\.recorder\(\)"):
        asyncio.run(agent.run(sample, run))  # type: ignore[arg-type]
    assert list(run.iter_traces()) == []
