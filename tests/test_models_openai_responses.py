"""OpenAI Responses adapter through the real SDK against the fake server."""

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
from slidescout.testing.fake_openai import FakeOpenAI, Fault, Reply, ToolCall, hang

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


@pytest.fixture(autouse=True)
def _key(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-responses-0000")


def model_for(srv, name="gpt-5", **kw):
    return resolve_model(f"openai:{name}", base_url=srv.base_url, api="responses", retry=FAST, **kw)


def ask(text="What is on this slide?", image=True):
    parts = [TextPart(text=text)] + ([jpeg_image_part()] if image else [])
    return [SystemMessage(content="You are a pathologist."), UserMessage(parts=parts)]


async def test_request_translation_full_history():
    img = jpeg_image_part(color=(10, 200, 30), detail="high")
    reasoning = ReasoningPart(
        text="hmm",
        provider="openai-responses",
        provider_data={
            "type": "reasoning",
            "id": "rs_1",
            "summary": [],
            "encrypted_content": "gAAAAenc",
        },
    )
    messages = [
        SystemMessage(content="You are a pathologist."),
        UserMessage(parts=[TextPart(text="Which organ?"), img]),
        AssistantMessage(
            parts=[
                reasoning,
                TextPart(text="Zooming."),
                ToolCallPart(
                    id="call_1", name="slide_zoom", arguments={"x0": 1, "y0": 2, "w": 3, "h": 4}
                ),
            ]
        ),
        ToolMessage(
            results=[
                ToolResultPart(
                    tool_call_id="call_1",
                    name="slide_zoom",
                    content=[TextPart(text="region (1,2) 3x4"), img],
                )
            ]
        ),
    ]
    with FakeOpenAI([Reply(text="Lung.")]) as srv:
        model = model_for(srv)
        resp = await model.request(
            ModelRequest(
                messages=messages,
                tools=[ZOOM],
                tool_choice="required",
                settings=ModelSettings(max_output_tokens=500, temperature=0.3),
            )
        )
        await model.aclose()
        body = srv.last_body
    assert body["model"] == "gpt-5" and body["instructions"] == "You are a pathologist."
    assert body["store"] is False and body["include"] == ["reasoning.encrypted_content"]
    assert "temperature" not in body  # reasoning models reject it
    assert body["max_output_tokens"] == 500 and body["tool_choice"] == "required"
    assert body["tools"] == [
        {
            "type": "function",
            "name": "slide_zoom",
            "description": "Zoom into a level-0 box.",
            "parameters": ZOOM.parameters,
            "strict": False,
        }
    ]
    items = body["input"]
    user = items[0]
    assert user["role"] == "user" and user["content"][0] == {
        "type": "input_text",
        "text": "Which organ?",
    }
    image = user["content"][1]
    assert image["type"] == "input_image" and image["detail"] == "high"
    assert image["image_url"] == "data:image/jpeg;base64," + base64.b64encode(img.data).decode()
    assert items[1] == {
        "type": "reasoning",
        "id": "rs_1",
        "summary": [],
        "encrypted_content": "gAAAAenc",
    }
    assert items[2] == {"role": "assistant", "content": "Zooming."}
    assert items[3] == {
        "type": "function_call",
        "call_id": "call_1",
        "name": "slide_zoom",
        "arguments": '{"x0": 1, "y0": 2, "w": 3, "h": 4}',
    }
    assert items[4] == {
        "type": "function_call_output",
        "call_id": "call_1",
        "output": "region (1,2) 3x4",
    }
    follow = items[5]
    assert follow["role"] == "user" and follow["content"][1]["type"] == "input_image"
    assert (
        resp.api == "openai-responses"
        and resp.model == "openai:gpt-5"
        and resp.message.text == "Lung."
    )
    assert resp.request_bytes > len(img.data)


async def test_reasoning_items_round_trip():
    with FakeOpenAI(
        [
            Reply(
                reasoning="Tissue looks glandular.",
                tool_calls=[ToolCall("slide_zoom", {"x0": 0, "y0": 0, "w": 9, "h": 9})],
            ),
            Reply(text="Adenocarcinoma."),
        ]
    ) as srv:
        model = model_for(srv, reasoning_effort="high", reasoning_summary="auto")
        msgs = ask()
        first = await model.request(ModelRequest(messages=msgs, tools=[ZOOM]))
        (r,) = first.message.reasoning
        assert r.text == "Tissue looks glandular." and r.provider == "openai-responses"
        assert r.provider_data["id"].startswith("rs_") and r.provider_data["encrypted_content"]
        assert first.stop_reason == "tool_calls" and first.usage.reasoning_tokens > 0
        call = first.message.tool_calls[0]
        msgs += [
            first.message,
            ToolMessage(
                results=[
                    ToolResultPart(
                        tool_call_id=call.id, name=call.name, content=[TextPart(text="ok")]
                    )
                ]
            ),
        ]
        second = await model.request(ModelRequest(messages=msgs, tools=[ZOOM]))
        await model.aclose()
        assert srv.bodies[0]["reasoning"] == {"effort": "high", "summary": "auto"}
        sent = [i for i in srv.last_body["input"] if i.get("type") == "reasoning"]
    assert sent == [r.provider_data]  # the whole item, verbatim
    assert second.message.text == "Adenocarcinoma." and second.stop_reason == "stop"


async def test_reasoning_without_encrypted_content_is_dropped():
    stale = ReasoningPart(
        provider="openai-responses",
        provider_data={"type": "reasoning", "id": "rs_x", "summary": []},
    )
    msgs = ask() + [
        AssistantMessage(parts=[stale, TextPart(text="hm")]),
        UserMessage(parts=[TextPart(text="go on")]),
    ]
    with FakeOpenAI(
        [Reply(text="ok")]
    ) as srv:  # the strict fake answers 404 to an unresolvable item
        model = model_for(srv)
        await model.request(ModelRequest(messages=msgs))
        await model.aclose()
        assert not [i for i in srv.last_body["input"] if i.get("type") == "reasoning"]


async def test_parsing_usage_and_cost(tmp_path, monkeypatch):
    prices = tmp_path / "p.toml"
    prices.write_text('[openai."gpt-5"]\ninput = 1.0\ncached_input = 0.1\noutput = 10.0\n')
    monkeypatch.setenv("SLIDESCOUT_PRICING", str(prices))
    usage = {"input": 1000, "cached": 400, "output": 300, "reasoning": 200}
    with FakeOpenAI([Reply(text="A", usage=usage), Reply(text="B")]) as srv:
        model = model_for(srv)
        resp = await model.request(ModelRequest(messages=ask()))
        await model.aclose()
    u = resp.usage
    assert (u.input_tokens, u.cached_input_tokens, u.output_tokens, u.reasoning_tokens) == (
        1000,
        400,
        300,
        200,
    )
    assert u.cost_usd == pytest.approx((600 * 1.0 + 400 * 0.1 + 300 * 10.0) / 1e6)


async def test_unpriced_local_model_costs_none():
    with FakeOpenAI([Reply(text="A")]) as srv:
        model = model_for(srv)  # a custom base URL: built-in prices do not apply
        resp = await model.request(ModelRequest(messages=ask()))
        await model.aclose()
    assert resp.usage.cost_usd is None


async def test_malformed_arguments_and_unknown_tool():
    with FakeOpenAI(
        [
            Reply(
                tool_calls=[
                    ToolCall("slide_zoom", raw_arguments='{"x0": 1, "y0": '),
                    ToolCall("no_such_tool", {"a": 1}),
                ]
            )
        ]
    ) as srv:
        model = model_for(srv)
        resp = await model.request(ModelRequest(messages=ask(), tools=[ZOOM]))
        await model.aclose()
    bad, unknown = resp.message.tool_calls
    assert (
        bad.parse_error
        and "invalid JSON" in bad.parse_error
        and bad.raw_arguments == '{"x0": 1, "y0": '
    )
    assert unknown.name == "no_such_tool" and unknown.arguments == {"a": 1}


async def test_no_tool_call_and_incomplete():
    with FakeOpenAI([Reply(text="Just text."), Reply(text="cut", stop="length")]) as srv:
        model = model_for(srv)
        a = await model.request(ModelRequest(messages=ask(), tools=[ZOOM]))
        b = await model.request(ModelRequest(messages=ask(), tools=[ZOOM]))
        await model.aclose()
    assert a.message.tool_calls == [] and a.stop_reason == "stop"
    assert b.stop_reason == "length"


async def test_non_reasoning_model_and_inline_images():
    img = jpeg_image_part()
    msgs = ask() + [
        AssistantMessage(parts=[ToolCallPart(id="c", name="slide_zoom", arguments={})]),
        ToolMessage(
            results=[
                ToolResultPart(
                    tool_call_id="c", name="slide_zoom", content=[TextPart(text="t"), img]
                )
            ]
        ),
    ]
    with FakeOpenAI([Reply(text="ok")]) as srv:
        model = model_for(srv, name="gpt-4o", tool_result_images="inline")
        await model.request(
            ModelRequest(
                messages=msgs, tools=[ZOOM], settings=ModelSettings(temperature=0.2, seed=7)
            )
        )
        await model.aclose()
        body = srv.last_body
    assert "include" not in body and "reasoning" not in body and body["temperature"] == 0.2
    out = [i for i in body["input"] if i.get("type") == "function_call_output"][0]["output"]
    assert out[0] == {"type": "input_text", "text": "t"} and out[1]["type"] == "input_image"
    assert body["input"][-1]["type"] == "function_call_output"  # no follow-up user message


async def test_429_retry_after_honoured_and_recorded():
    with FakeOpenAI(
        [Fault(429, "slow down", retry_after=0.05), Fault(429, retry_after_ms=30), Reply(text="ok")]
    ) as srv:
        model = model_for(srv)
        resp = await model.request(ModelRequest(messages=ask()))
        await model.aclose()
        assert len(srv.requests) == 3
    assert [(r.attempt, r.reason, r.wait_s) for r in resp.retries] == [
        (1, "429 rate limit", 0.05),
        (2, "429 rate limit", 0.03),
    ]


async def test_retry_after_is_capped():
    policy = RetryPolicy(max_retries=2, base_wait_s=0.01, max_wait_s=0.05)
    with FakeOpenAI([Fault(429, retry_after=30), Reply(text="ok")]) as srv:
        model = resolve_model("openai:gpt-5", base_url=srv.base_url, api="responses", retry=policy)
        resp = await model.request(ModelRequest(messages=ask()))
        await model.aclose()
    assert resp.retries[0].wait_s == 0.05


async def test_500_retried_then_success():
    with FakeOpenAI([Fault(500), Fault(503), Reply(text="ok")]) as srv:
        model = model_for(srv)
        resp = await model.request(ModelRequest(messages=ask()))
        await model.aclose()
    assert [r.reason for r in resp.retries] == ["500", "503"]
    assert all(0.01 <= r.wait_s <= 0.1 for r in resp.retries) and resp.message.text == "ok"


async def test_timeout_retried():
    with FakeOpenAI([hang(30), Reply(text="ok")]) as srv:
        model = resolve_model(
            "openai:gpt-5", base_url=srv.base_url, api="responses", retry=FAST, timeout_s=2.0
        )
        resp = await model.request(ModelRequest(messages=ask()))
        await model.aclose()
    assert [r.reason for r in resp.retries] == ["timeout"] and resp.message.text == "ok"


async def test_400_not_retried():
    with FakeOpenAI([Fault(400, "Invalid image data"), Reply(text="never")]) as srv:
        model = model_for(srv)
        with pytest.raises(ModelError) as ei:
            await model.request(ModelRequest(messages=ask()))
        await model.aclose()
        assert len(srv.requests) == 1
    err = ei.value
    assert err.retryable is False and err.status == 400 and err.retries == []
    assert (
        "HTTP 400" in str(err) and "Invalid image data" in str(err) and "openai:gpt-5" in str(err)
    )
    assert err.__cause__ is None and err.__context__ is None


async def test_retries_exhausted():
    with FakeOpenAI([Fault(500)] * 10) as srv:
        model = model_for(srv)
        with pytest.raises(ModelError) as ei:
            await model.request(ModelRequest(messages=ask()))
        await model.aclose()
        assert len(srv.requests) == FAST.max_retries + 1
    err = ei.value
    assert err.retryable is True and err.status == 500 and len(err.retries) == FAST.max_retries
    assert "gave up after 4 attempts" in str(err) and "500, 500, 500" in str(err)


async def test_missing_image_bytes_is_a_clear_error():
    part = jpeg_image_part().model_copy(update={"data": None})
    with FakeOpenAI([Reply(text="never")]) as srv:
        model = model_for(srv)
        with pytest.raises(ModelError, match="no bytes in memory"):
            await model.request(ModelRequest(messages=[UserMessage(parts=[part])]))
        await model.aclose()
        assert srv.requests == []
