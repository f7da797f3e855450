"""The fake servers themselves: auto planner, scripting helpers, latency, recording."""

from __future__ import annotations

import time

import pytest

from slidescout.agents.models import RetryPolicy, resolve_model
from slidescout.core.messages import (
    ModelRequest,
    SystemMessage,
    TextPart,
    ToolMessage,
    ToolResultPart,
    ToolSpec,
    UserMessage,
)
from slidescout.errors import ModelError
from slidescout.testing.fake_anthropic import FakeAnthropic
from slidescout.testing.fake_common import example_arguments, jpeg_image_part
from slidescout.testing.fake_openai import FakeOpenAI, Fault, Reply

ZOOM = ToolSpec(
    name="slide_zoom",
    description="zoom",
    parameters={
        "type": "object",
        "required": ["x0", "y0", "w", "h"],
        "properties": {
            "x0": {"type": "integer", "minimum": 0},
            "y0": {"type": "integer", "minimum": 0, "maximum": 50},
            "w": {"type": "integer", "exclusiveMinimum": 200},
            "h": {"type": "integer", "default": 7},
            "mode": {"type": "string", "enum": ["a", "b"]},
            "tags": {"type": "array", "items": {"type": "string"}, "minItems": 1},
            "opt": {"anyOf": [{"type": "null"}, {"type": "number"}]},
        },
    },
)


def test_example_arguments_follow_the_schema():
    assert example_arguments(ZOOM.parameters) == {
        "x0": 100,
        "y0": 50,
        "w": 201,
        "h": 7,
        "mode": "a",
        "tags": ["auto"],
        "opt": 100.0,
    }


@pytest.mark.parametrize("kind", ["responses", "chat", "anthropic"])
async def test_auto_mode_navigates_then_answers(kind, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-0000000")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test-0000000")
    fake = FakeAnthropic if kind == "anthropic" else FakeOpenAI
    with fake(auto_turns=2, auto_reasoning=True) as srv:
        if kind == "anthropic":
            model = resolve_model("anthropic:claude-sonnet-4-5", base_url=srv.base_url)
        else:
            model = resolve_model("openai:gpt-5", base_url=srv.base_url, api=kind)
        msgs = [
            SystemMessage(content="s"),
            UserMessage(parts=[TextPart(text="q"), jpeg_image_part()]),
        ]
        calls = 0
        for _ in range(5):
            resp = await model.request(ModelRequest(messages=msgs, tools=[ZOOM]))
            msgs.append(resp.message)
            if not resp.message.tool_calls:
                break
            calls += 1
            (call,) = resp.message.tool_calls
            assert call.name == "slide_zoom" and call.arguments["w"] == 201
            msgs.append(
                ToolMessage(
                    results=[
                        ToolResultPart(
                            tool_call_id=call.id,
                            name=call.name,
                            content=[TextPart(text="ok"), jpeg_image_part()],
                        )
                    ]
                )
            )
        await model.aclose()
        assert calls == 2 and resp.message.text == '{"answer": 1}' and resp.message.reasoning
        assert len(srv.requests) == 3


async def test_latency_recording_push_and_exhaustion():
    with FakeOpenAI([Reply(text="one")], latency_s=0.2) as srv:
        model = resolve_model("openai:m", base_url=srv.base_url, retry=RetryPolicy(max_retries=0))
        t0 = time.monotonic()
        resp = await model.request(
            ModelRequest(messages=[UserMessage(parts=[TextPart(text="hi")])])
        )
        assert time.monotonic() - t0 >= 0.2 and resp.latency_s >= 0.2
        srv.push(Reply(text="two"))
        assert srv.remaining == 1
        assert (
            await model.request(ModelRequest(messages=[UserMessage(parts=[TextPart(text="x")])]))
        ).message.text == "two"
        with pytest.raises(ModelError, match="script exhausted"):
            await model.request(ModelRequest(messages=[UserMessage(parts=[TextPart(text="x")])]))
        await model.aclose()
        assert [r.path for r in srv.requests] == ["/v1/chat/completions"] * 3
        assert srv.bodies[1]["messages"] == [{"role": "user", "content": "x"}]


async def test_callable_script():
    def script(body):
        text = body["messages"][-1]["content"]
        return Fault(418, "teapot") if text == "tea" else Reply(text=text.upper())

    with FakeOpenAI(script) as srv:
        model = resolve_model("openai:m", base_url=srv.base_url, retry=RetryPolicy(max_retries=0))
        resp = await model.request(
            ModelRequest(messages=[UserMessage(parts=[TextPart(text="echo")])])
        )
        assert resp.message.text == "ECHO"
        with pytest.raises(ModelError, match="418"):
            await model.request(ModelRequest(messages=[UserMessage(parts=[TextPart(text="tea")])]))
        await model.aclose()


def test_url_before_start_is_an_error():
    with pytest.raises(RuntimeError, match="not started"):
        _ = FakeOpenAI().base_url


async def test_async_context_and_no_recording():
    async with FakeAnthropic(record=False, auto_turns=0) as srv:
        model = resolve_model(
            "anthropic:claude-haiku-4-5", base_url=srv.base_url
        )  # local: placeholder key
        resp = await model.request(
            ModelRequest(messages=[UserMessage(parts=[TextPart(text="hi")])], tools=[ZOOM])
        )
        await model.aclose()
        assert resp.message.text == '{"answer": 1}'
        assert srv.requests[0].body == {} and srv.requests[0].size > 0
