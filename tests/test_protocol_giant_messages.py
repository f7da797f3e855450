"""``giant``: what the messages say, as GIANT's agents send them (its OpenAI and Claude agent files):
the opening message is ``[question, overview]``; a tool result is the region, the slide size, a
reminder and the calls remaining; a box outside the slide is clamped and shown; a failed call gets
``Error: ...`` and the loop goes on. Under ``scout`` the bounded-error rule stays."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from test_protocol_giant import ANSWER, T, _run, slide_path  # noqa: F401 (a fixture)

from slidescout.agents.models import resolve_model
from slidescout.testing.fake_anthropic import FakeAnthropic
from slidescout.testing.fake_openai import FakeOpenAI, Reply, ToolCall

OUTSIDE = ToolCall("slide_zoom", {"x0": 7000, "y0": 100, "w": 500, "h": 400})  # slide: 6000 x 4000
BAD = ToolCall("slide_zoom", {"x0": 10, "y0": 10, "w": 100})  # no h
# the result text: region origin and size, the slide size and reminder, the calls remaining
RESULT = re.compile(
    r"Region shown: top-left corner \((\d+),(\d+)\), size (\d+)×(\d+) pixels\. Reminder: the full "
    r"slide is 6000 × 4000 pixels, and every coordinate refers to that full resolution\. "
    r"(\d+) function calls remain\."
)


def _openai(script: list[Reply], tmp_path: Path, slide: Path, preset: str = "giant") -> Any:
    with FakeOpenAI(script) as srv:
        model = resolve_model("openai:gpt-5", base_url=srv.base_url, api="responses")
        trace = _run(model, slide, tmp_path, preset=preset, max_steps=T)
        return trace, srv.bodies


def _claude(script: list[Reply], tmp_path: Path, slide: Path) -> Any:
    with FakeAnthropic(script) as srv:
        model = resolve_model("anthropic:claude-sonnet-4-5", base_url=srv.base_url)
        trace = _run(model, slide, tmp_path, max_steps=T)
        return trace, srv.bodies


def test_openai_opening_message_and_results(slide_path: Path, tmp_path: Path) -> None:  # noqa: F811
    zoom = ToolCall("slide_zoom", {"x0": 1000, "y0": 800, "w": 2000, "h": 1500})
    trace, bodies = _openai([Reply(tool_calls=[zoom]), ANSWER], tmp_path, slide_path)
    assert trace.status == "answered"
    # the opening message: the question, then the overview; no caption (after the system item)
    first = bodies[0]["input"][1]
    assert first["role"] == "user"
    assert [c["type"] for c in first["content"]] == ["input_text", "input_image"]
    assert first["content"][0]["text"] == trace.question  # the sample's question, as asked
    # the tool result: that text and nothing else, then the image
    [out] = [i for i in bodies[1]["input"] if i.get("type") == "function_call_output"]
    text = out["output"][0]["text"]
    m = RESULT.fullmatch(text)
    assert m, text
    assert m.groups() == ("1000", "800", "2000", "1500", str(T - 2))  # T - step - 1, step 1


def test_claude_opening_message_and_results(slide_path: Path, tmp_path: Path) -> None:  # noqa: F811
    zoom = ToolCall("slide_zoom", {"x0": 1000, "y0": 800, "w": 2000, "h": 1500})
    trace, bodies = _claude([Reply(tool_calls=[zoom]), ANSWER], tmp_path, slide_path)
    assert trace.status == "answered"
    first = bodies[0]["messages"][0]
    assert [c["type"] for c in first["content"]] == ["text", "image"]
    assert first["content"][0]["text"] == trace.question  # the sample's question, as asked
    [result] = [b for b in bodies[1]["messages"][-1]["content"] if b["type"] == "tool_result"]
    texts = [c["text"] for c in result["content"] if c["type"] == "text"]
    assert len(texts) == 1 and RESULT.fullmatch(texts[0]), texts
    assert [c["type"] for c in result["content"]] == ["text", "image"]


def test_box_outside_the_slide_is_clamped_and_shown(slide_path: Path, tmp_path: Path) -> None:  # noqa: F811
    trace, bodies = _openai([Reply(tool_calls=[OUTSIDE]), ANSWER], tmp_path, slide_path)
    [event] = trace.tool_events
    assert event.error is None and len(event.images) == 1
    assert event.images[0].box == (5999, 100, 1, 400)  # down to a 1 px column at the edge
    assert event.data["requested"] == [7000, 100, 500, 400] and event.data["clamped"] is True
    [out] = [i for i in bodies[1]["input"] if i.get("type") == "function_call_output"]
    assert [o["type"] for o in out["output"]] == ["input_text", "input_image"]
    assert RESULT.fullmatch(out["output"][0]["text"])


def test_scout_still_rejects_a_box_outside_the_slide(slide_path: Path, tmp_path: Path) -> None:  # noqa: F811
    trace, _ = _openai([Reply(tool_calls=[OUTSIDE]), ANSWER], tmp_path, slide_path, "scout")
    [event] = trace.tool_events
    assert event.error is not None and "outside the slide" in event.error and not event.images


@pytest.mark.parametrize("route", ["openai", "anthropic"])
def test_failed_calls_get_error_and_the_loop_goes_on(
    slide_path: Path,  # noqa: F811
    tmp_path: Path,
    route: str,
) -> None:
    script = [Reply(tool_calls=[BAD]) for _ in range(T - 1)] + [ANSWER]  # more than max_errors (3)
    run = _openai if route == "openai" else _claude
    trace, bodies = run(script, tmp_path, slide_path)
    assert trace.status == "answered" and len(bodies) == T
    events = trace.tool_events
    assert len(events) == T - 1 and all(e.error for e in events)
    last = bodies[-1]
    if route == "openai":  # GIANT: {"type": "function_call_output", "output": "Error: ..."}
        outputs = [i["output"] for i in last["input"] if i.get("type") == "function_call_output"]
        assert outputs == [f"Error: {e.error}" for e in events]
    else:  # GIANT's Claude agent: a tool_result whose content is "Error: ...", no is_error flag
        results = [
            b
            for m in last["messages"]
            for b in m["content"]
            if isinstance(m["content"], list)
            if b.get("type") == "tool_result"
        ]
        assert [r["content"] for r in results] == [f"Error: {e.error}" for e in events]
        assert not any("is_error" in r for r in results)


def test_scout_keeps_the_bounded_error_rule(slide_path: Path, tmp_path: Path) -> None:  # noqa: F811
    script = [Reply(tool_calls=[BAD]) for _ in range(T - 1)] + [ANSWER]
    trace, bodies = _openai(script, tmp_path, slide_path, "scout")
    assert trace.status == "error" and len(bodies) == 3  # max_errors failing steps in a row
    assert "consecutive steps failed" in (trace.error or "")
