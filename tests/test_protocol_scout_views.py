"""``scout`` (issue 20): several views per turn, a budget of views, concurrent rendering, an
append-only history that drops old images only past the context window, and a final step that
ends with an answer or with ``max_steps`` and the calls listed."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest
from slidefactory import make_tiff

from slidescout.agents.loop import make_agent
from slidescout.agents.models import resolve_model
from slidescout.agents.models.profile import permissive_profile
from slidescout.core.messages import ModelRequest, ToolMessage
from slidescout.core.trace import ErrorEvent, NoteEvent, Trace
from slidescout.eval.ask import question_sample
from slidescout.testing.fake_anthropic import FakeAnthropic
from slidescout.testing.fake_openai import FakeOpenAI, Reply, ToolCall
from slidescout.testing.scripted import FunctionModel, reply
from slidescout.tools.base import tool
from slidescout.tools.context import ToolContext
from slidescout.tools.registry import ToolRegistry
from slidescout.traces.rundir import RunDir

ANSWER = '<report>Seen enough.</report>\n<response>{"answer": 1}</response>'


@pytest.fixture(scope="module")
def slide_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    p = tmp_path_factory.mktemp("views") / "s.tiff"
    make_tiff(p, 6000, 4000, mpp=0.25)
    return p


def _zoom(i: int) -> ToolCall:
    return ToolCall("slide_zoom", {"x0": 200 * i, "y0": 150 * i, "w": 1500, "h": 1000})


def _run(agent: Any, slide_path: Path, tmp_path: Path) -> Trace:
    sample = question_sample(slide_path, "What is the diagnosis?", ["Tumour", "Normal"])
    run = RunDir.create(tmp_path / "run", agent.config(), agent.prompt_hashes())

    async def go() -> Trace:
        try:
            return await agent.run(sample, run.recorder())
        finally:
            await agent.aclose()

    return asyncio.run(go())


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_several_views_per_turn_and_a_budget_of_views(
    provider: str, slide_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """T = 10 is 9 views: 4 + 4 + 1 (the third turn asks for 4, one is left), then the answer;
    every call of a turn is answered in one tool-result turn."""
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test-0000000")
    n = iter(range(100))

    def fn(body: dict[str, Any]) -> Reply:
        choice = body.get("tool_choice")
        if choice in ("none", {"type": "none"}):
            return Reply(text=ANSWER)
        return Reply(tool_calls=[_zoom(next(n)) for _ in range(4)])

    server: Any = FakeOpenAI(fn) if provider == "openai" else FakeAnthropic(fn)
    with server as srv:
        model_id = "openai:gpt-5" if provider == "openai" else "anthropic:claude-sonnet-4-5"
        model = resolve_model(
            model_id,
            base_url=srv.base_url,
            **({"api": "responses"} if provider == "openai" else {}),  # type: ignore[arg-type]
        )
        trace = _run(make_agent(model, max_steps=10), slide_path, tmp_path)
        bodies = srv.bodies
    assert trace.status == "answered" and len(bodies) == 4
    run = [t for t in trace.tool_events if t.error is None]
    refused = [t for t in trace.tool_events if t.error]
    assert len(run) == 9 and len({t.images[0].box for t in run}) == 9
    assert len(refused) == 3 and all("no views remain" in (t.error or "") for t in refused)
    if provider == "openai":
        assert (
            "up to 4 regions" in bodies[0]["instructions"]
            and "9 views in all" in (bodies[0]["instructions"])
        )
        assert bodies[0]["parallel_tool_calls"] is True
        outputs = [i for i in bodies[1]["input"] if i.get("type") == "function_call_output"]
        assert len(outputs) == 4 and "5 views remain" in outputs[0]["output"]
        images_after = bodies[1]["input"][-1]  # the four images, in one user message after them
        assert sum(c["type"] == "input_image" for c in images_after["content"]) == 4
    else:
        assert "up to 4 regions" in bodies[0]["system"]
        assert "disable_parallel_tool_use" not in str(bodies[0]["tool_choice"])
        turn = bodies[1]["messages"][-1]
        assert (
            turn["role"] == "user" and [b["type"] for b in turn["content"]] == ["tool_result"] * 4
        )
        assert all(b["content"][-1]["type"] == "image" for b in turn["content"])
    # no view is smaller than giant shows it: 1000 px (OpenAI) or 500 px (Claude) on the long side
    side = 1000 if provider == "openai" else 500
    assert all(max(t.images[0].width, t.images[0].height) == side for t in run)


def test_calls_of_a_turn_run_concurrently(slide_path: Path, tmp_path: Path) -> None:
    """Two calls of one turn meet at a barrier: they pass only if both are in flight together."""
    barrier = threading.Barrier(2, timeout=60)

    @tool
    def probe(label: str, ctx: ToolContext) -> str:
        """Wait for the other call of the turn.

        Args:
            label: which call this is.
        """
        barrier.wait()
        return f"met {label}"

    registry = ToolRegistry(builtin_modules=["slidescout.tools.navigation"], plugins=False)
    registry.register(probe)

    def fn(req: ModelRequest, turn: int) -> Any:
        if turn == 0:
            return reply("", ("probe", {"label": "a"}), ("probe", {"label": "b"}))
        return reply(ANSWER)

    model = FunctionModel(fn)
    agent = make_agent(model, tools="slide_zoom,probe", registry=registry)
    trace = _run(agent, slide_path, tmp_path)
    assert trace.status == "answered"
    assert [t.text for t in trace.tool_events] == ["met a", "met b"]  # in call order


def test_history_is_append_only_until_the_context_window(slide_path: Path, tmp_path: Path) -> None:
    """A small context window: old images are dropped once, in one block, with a note; the
    requests before and after share their prefix (the cache breaks once)."""
    n = iter(range(100))

    def fn(req: ModelRequest, turn: int) -> Any:
        if req.tool_choice == "none":
            return reply(ANSWER)
        calls = [
            ("slide_zoom", {"x0": 150 * i, "y0": 100 * i, "w": 1200, "h": 900})
            for i in (next(n), next(n))
        ]
        return reply("", *calls)

    profile = permissive_profile("openai:gpt-5")
    window = 40_000 + 9 * 630  # the images of about 9 views, past the output reserve
    from dataclasses import replace

    model = FunctionModel(fn, name="openai:gpt-5", profile=replace(profile, context_window=window))
    trace = _run(make_agent(model, max_steps=21), slide_path, tmp_path)
    assert trace.status == "answered"
    notes = [e.message for e in trace.events if isinstance(e, NoteEvent) and "dropped" in e.message]
    assert len(notes) == 1, notes  # the prefix broke once
    shown = [
        sum(
            1
            for m in r.messages
            if isinstance(m, ToolMessage)
            for res in m.results
            for c in res.content
            if c.kind == "image"
        )
        for r in model.requests
    ]
    drop_at = next(i for i, (a, b) in enumerate(zip(shown, shown[1:], strict=False)) if b < a) + 1
    assert shown[:drop_at] == sorted(shown[:drop_at])  # growing before the drop
    assert shown[drop_at] <= shown[drop_at - 1] // 2 + 2  # a large block at once
    assert "image no longer shown" in str(model.requests[-1].messages)
    # the overview (the opening message) is never dropped
    assert model.requests[-1].messages[1].parts[-1].kind == "image"
    # after the drop the history is append-only again
    for a, b in zip(model.requests[drop_at:], model.requests[drop_at + 1 :], strict=False):
        assert b.messages[: len(a.messages) - 1] == a.messages[: len(a.messages) - 1]


def test_a_final_reply_of_tool_calls_only_is_max_steps_with_the_calls_listed(
    slide_path: Path, tmp_path: Path
) -> None:
    """A server that ignores tool_choice none: the last step also asks in words; a reply with
    only tool calls then ends the sample as max_steps, its calls named in the error."""
    model = FunctionModel(
        lambda req, turn: reply("", ("slide_zoom", {"x0": 7, "y0": 8, "w": 900, "h": 900}))
    )
    trace = _run(make_agent(model, max_steps=3), slide_path, tmp_path)
    assert trace.status == "max_steps"
    last = model.requests[-1]
    assert last.tool_choice == "none" and "final step" in str(last.messages[-1])
    err = [e for e in trace.events if isinstance(e, ErrorEvent) and e.fatal]
    assert err and "slide_zoom" in err[-1].message and '"x0": 7' in err[-1].message
    assert trace.error is not None and "tool calls only" in trace.error


def test_claude_reads_the_previous_request_however_many_blocks_a_turn_adds(
    slide_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Claude looks back only 20 blocks from a breakpoint; a turn of 12 views adds 24. The
    breakpoint at the end of the previous request makes each request read all of it."""
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test-0000000")
    n = iter(range(100))

    def fn(body: dict[str, Any]) -> Reply:
        if body.get("tool_choice") == {"type": "none"}:
            return Reply(text=ANSWER)
        return Reply(tool_calls=[_zoom(next(n) % 20) for _ in range(12)])

    with FakeAnthropic(fn) as srv:
        model = resolve_model("anthropic:claude-sonnet-4-5", base_url=srv.base_url)
        agent = make_agent(model, max_steps=25, views_per_turn=12)
        trace = _run(agent, slide_path, tmp_path)
        bodies = srv.bodies
    assert trace.status == "answered" and len(bodies) == 3
    marks = [
        i for i, m in enumerate(bodies[2]["messages"]) for b in m["content"] if "cache_control" in b
    ]
    assert marks == [0, 2, 4]  # first turn, the previous request's end, this request's end
    calls = [e for e in trace.events if e.kind == "model_call"]
    first, second, third = (c.usage for c in calls)
    # the first request is under Sonnet's 1024-token minimum: nothing is cached yet
    assert first.cache_write_tokens == 0 and second.cache_write_tokens > 0
    assert third.cached_input_tokens == second.cached_input_tokens + second.cache_write_tokens
