"""OpenAI Chat Completions adapter (any compatible server) through the real SDK and the fake."""

from __future__ import annotations

import base64

import pytest

from slidescout.agents.models import RetryPolicy, resolve_model
from slidescout.core.messages import (
    AssistantMessage,
    ModelRequest,
    ReasoningPart,
    SystemMessage,
    TextPart,
    ToolCallPart,
    ToolMessage,
    ToolResultPart,
    ToolSpec,
    UserMessage,
)
from slidescout.core.model_settings import ModelSettings
from slidescout.errors import ModelError
from slidescout.testing.fake_common import jpeg_image_part
from slidescout.testing.fake_openai import FakeOpenAI, Fault, Reply, ToolCall

FAST = RetryPolicy(max_retries=3, base_wait_s=0.01, max_wait_s=0.1, max_total_wait_s=5)
ZOOM = ToolSpec(
    name="slide_zoom",
    description="Zoom into a level-0 box.",
    parameters={
        "type": "object",
        "required": ["x0", "y0", "w", "h"],
        "properties": {k: {"type": "integer", "minimum": 0} for k in ("x0", "y0", "w", "h")},
    },
)


def local(srv, name="qwen2.5-vl", **kw):
    return resolve_model(
        f"openai:{name}", base_url=srv.base_url, retry=FAST, **kw
    )  # no key: local server


def ask():
    return [
        SystemMessage(content="You are a pathologist."),
        UserMessage(parts=[TextPart(text="Which organ?"), jpeg_image_part()]),
    ]


async def test_request_translation():
    img = jpeg_image_part(color=(1, 2, 3), detail="low")
    msgs = [
        SystemMessage(content="You are a pathologist."),
        UserMessage(parts=[TextPart(text="Which organ?"), img]),
        AssistantMessage(
            parts=[
                ReasoningPart(text="think", provider="openai-chat"),
                TextPart(text="Zooming."),
                ToolCallPart(
                    id="call_1", name="slide_zoom", arguments={"x0": 1, "y0": 2, "w": 3, "h": 4}
                ),
                ToolCallPart(
                    id="call_2", name="slide_zoom", raw_arguments="{oops", parse_error="bad"
                ),
            ]
        ),
        ToolMessage(
            results=[
                ToolResultPart(
                    tool_call_id="call_1", name="slide_zoom", content=[TextPart(text="region"), img]
                ),
                ToolResultPart(
                    tool_call_id="call_2",
                    name="slide_zoom",
                    is_error=True,
                    content=[TextPart(text="Error: bad arguments")],
                ),
            ]
        ),
    ]
    with FakeOpenAI([Reply(text="Lung.")]) as srv:
        model = local(srv)
        assert model.api == "openai-chat"
        resp = await model.request(
            ModelRequest(
                messages=msgs,
                tools=[ZOOM],
                tool_choice="auto",
                settings=ModelSettings(max_output_tokens=256, temperature=0.0, seed=3),
            )
        )
        await model.aclose()
        body = srv.last_body
        auth = srv.requests[-1].headers["authorization"]
    assert auth == "Bearer not-needed"
    assert body["max_tokens"] == 256 and body["temperature"] == 0.0 and body["seed"] == 3
    assert body["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "slide_zoom",
                "description": "Zoom into a level-0 box.",
                "parameters": ZOOM.parameters,
            },
        }
    ]
    assert body["tool_choice"] == "auto"
    m = body["messages"]
    assert m[0] == {"role": "system", "content": "You are a pathologist."}
    assert m[1]["content"][1] == {
        "type": "image_url",
        "image_url": {
            "url": "data:image/jpeg;base64," + base64.b64encode(img.data).decode(),
            "detail": "low",
        },
    }
    assert (
        m[2]["role"] == "assistant"
        and m[2]["content"] == "Zooming."
        and "reasoning_content" not in m[2]
    )
    assert [c["function"]["arguments"] for c in m[2]["tool_calls"]] == [
        '{"x0": 1, "y0": 2, "w": 3, "h": 4}',
        "{oops",
    ]
    assert m[3] == {"role": "tool", "tool_call_id": "call_1", "content": "region"}
    assert m[4] == {"role": "tool", "tool_call_id": "call_2", "content": "Error: bad arguments"}
    assert m[5]["role"] == "user" and m[5]["content"][0]["text"].startswith(
        "Image returned by slide_zoom"
    )
    assert m[5]["content"][1]["type"] == "image_url"
    assert (
        resp.message.text == "Lung." and resp.stop_reason == "stop" and resp.usage.cost_usd is None
    )


async def test_openai_endpoint_uses_max_completion_tokens(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-chat-0000")
    from slidescout.agents.models.providers import OpenAIProvider

    monkeypatch.setattr(OpenAIProvider, "custom_endpoint", property(lambda self: False))
    with FakeOpenAI([Reply(text="ok", usage={"input": 1000, "output": 100})]) as srv:
        model = resolve_model("openai:gpt-4o", base_url=srv.base_url, api="chat", retry=FAST)
        resp = await model.request(
            ModelRequest(messages=ask(), settings=ModelSettings(max_output_tokens=9))
        )
        await model.aclose()
        assert srv.last_body["max_completion_tokens"] == 9 and "max_tokens" not in srv.last_body
    assert resp.usage.cost_usd == pytest.approx(
        (1000 * 2.5 + 100 * 10.0) / 1e6
    )  # built-in gpt-4o price


async def test_reasoning_content_and_tool_calls_parsed():
    with FakeOpenAI(
        [
            Reply(
                reasoning="Looks like lung.",
                tool_calls=[
                    ToolCall("slide_zoom", {"x0": 0, "y0": 0, "w": 5, "h": 5}, id="call_a"),
                    ToolCall("slide_zoom", raw_arguments='{"x0": 0,, }', id="call_b"),
                ],
            )
        ]
    ) as srv:
        model = local(srv)
        resp = await model.request(ModelRequest(messages=ask(), tools=[ZOOM]))
        await model.aclose()
    (r,) = resp.message.reasoning
    assert r.text == "Looks like lung." and r.provider == "openai-chat"
    good, bad = resp.message.tool_calls
    assert good.id == "call_a" and good.arguments == {"x0": 0, "y0": 0, "w": 5, "h": 5}
    assert bad.parse_error and bad.raw_arguments == '{"x0": 0,, }' and bad.arguments == {}
    assert resp.stop_reason == "tool_calls" and resp.usage.reasoning_tokens > 0


async def test_json_action_fallback_end_to_end():
    with FakeOpenAI(
        [
            Reply(
                text='```json\n{"tool": "slide_zoom", "arguments": {"x0": 1, "y0": 1, "w": 2, "h": 2}}\n```'
            ),
            Reply(text='I think I\'d like to call {"tool": "slide_zoom"}'),
            Reply(text="Answer: lung"),
        ]
    ) as srv:
        model = local(srv, name="llava:13b")
        assert model.profile.tools is False
        msgs = ask()
        first = await model.request(ModelRequest(messages=msgs, tools=[ZOOM]))
        (call,) = first.message.tool_calls
        assert call.name == "slide_zoom" and call.arguments == {"x0": 1, "y0": 1, "w": 2, "h": 2}
        body = srv.last_body
        assert "tools" not in body and "slide_zoom" in body["messages"][0]["content"]
        msgs += [
            first.message,
            ToolMessage(
                results=[
                    ToolResultPart(
                        tool_call_id=call.id,
                        name=call.name,
                        content=[TextPart(text="zoomed"), jpeg_image_part()],
                    )
                ]
            ),
        ]
        second = await model.request(ModelRequest(messages=msgs, tools=[ZOOM]))
        assert second.message.tool_calls[0].parse_error  # prose around the action
        sent = srv.last_body["messages"]
        assert all(m["role"] != "tool" and "tool_calls" not in m for m in sent)
        assert sent[2] == {
            "role": "assistant",
            "content": '{"tool": "slide_zoom", "arguments": {"x0": 1, "y0": 1, "w": 2, "h": 2}}',
        }
        assert sent[3]["role"] == "user" and sent[3]["content"][0]["text"].startswith(
            "Result of slide_zoom"
        )
        third = await model.request(ModelRequest(messages=msgs, tools=[]))
        assert third.message.text == "Answer: lung" and not third.message.tool_calls
        await model.aclose()


async def test_chat_faults():
    with FakeOpenAI(
        [Fault(500), Fault(429, retry_after_ms=20), Reply(text="ok"), Fault(422, "bad schema")]
    ) as srv:
        model = local(srv)
        resp = await model.request(ModelRequest(messages=ask()))
        assert [(r.reason, r.wait_s) for r in resp.retries][1] == ("429 rate limit", 0.02)
        with pytest.raises(ModelError) as ei:
            await model.request(ModelRequest(messages=ask()))
        await model.aclose()
    assert ei.value.status == 422 and not ei.value.retryable and "bad schema" in str(ei.value)


async def test_connection_refused_is_retryable(unused_port=None):
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    model = resolve_model(
        "openai:qwen",
        base_url=f"http://127.0.0.1:{port}/v1",
        retry=RetryPolicy(max_retries=1, base_wait_s=0.01),
    )
    with pytest.raises(ModelError) as ei:
        await model.request(ModelRequest(messages=ask()))
    await model.aclose()
    assert ei.value.retryable and "connection error" in str(ei.value)
