"""Anthropic Messages adapter through the real SDK against the (strict) fake server."""

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
from slidescout.testing.fake_anthropic import FakeAnthropic, Fault, Reply, ToolCall
from slidescout.testing.fake_common import jpeg_image_part

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
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test-0000000")


def claude(srv, **kw):
    return resolve_model("anthropic:claude-sonnet-4-5", base_url=srv.base_url, retry=FAST, **kw)


def ask():
    return [
        SystemMessage(content="You are a pathologist."),
        UserMessage(parts=[TextPart(text="Which organ?"), jpeg_image_part()]),
    ]


async def test_thinking_and_tool_result_round_trip():
    script = [
        Reply(
            reasoning="Glands everywhere.",
            redacted=True,
            text="Let me zoom.",
            tool_calls=[ToolCall("slide_zoom", {"x0": 1, "y0": 2, "w": 3, "h": 4})],
        ),
        Reply(text="Colon."),
    ]
    with FakeAnthropic(script) as srv:
        model = claude(srv, thinking_budget=2048, prompt_cache=True)
        msgs = ask()
        first = await model.request(
            ModelRequest(messages=msgs, tools=[ZOOM], tool_choice="required")
        )
        thinking, redacted = first.message.reasoning
        assert thinking.text == "Glands everywhere." and thinking.provider_data["signature"]
        assert (
            redacted.provider_data["type"] == "redacted_thinking" and redacted.provider_data["data"]
        )
        (call,) = first.message.tool_calls
        assert first.stop_reason == "tool_calls" and first.message.text == "Let me zoom."
        img = jpeg_image_part(color=(5, 5, 5))
        msgs += [
            first.message,
            ToolMessage(
                results=[
                    ToolResultPart(
                        tool_call_id=call.id,
                        name=call.name,
                        content=[TextPart(text="region (1,2) 3x4"), img],
                    )
                ]
            ),
        ]
        second = await model.request(ModelRequest(messages=msgs, tools=[ZOOM]))
        await model.aclose()
        b1, b2 = srv.bodies
    assert second.message.text == "Colon." and second.stop_reason == "stop"
    assert b1["system"] == "You are a pathologist."
    assert b1["thinking"] == {"type": "enabled", "budget_tokens": 2048} and b1["max_tokens"] > 2048
    assert b1["tool_choice"] == {"type": "auto"}  # forced tool use is not allowed with thinking
    assert b1["tools"] == [
        {
            "name": "slide_zoom",
            "description": "Zoom into a level-0 box.",
            "input_schema": ZOOM.parameters,
        }
    ]
    image = b1["messages"][0]["content"][1]
    assert image["type"] == "image" and image["source"]["type"] == "base64"
    assert image["source"]["media_type"] == "image/jpeg"
    assert base64.b64decode(image["source"]["data"])[:2] == b"\xff\xd8"
    assistant = b2["messages"][1]["content"]
    assert assistant[0] == thinking.provider_data and assistant[1] == redacted.provider_data
    assert assistant[2] == {"type": "text", "text": "Let me zoom."}
    assert assistant[3] == {
        "type": "tool_use",
        "id": call.id,
        "name": "slide_zoom",
        "input": {"x0": 1, "y0": 2, "w": 3, "h": 4},
    }
    result = b2["messages"][2]["content"][0]
    assert result["type"] == "tool_result" and result["tool_use_id"] == call.id
    assert result["content"][0] == {"type": "text", "text": "region (1,2) 3x4"}
    assert result["content"][1]["type"] == "image"
    assert result.get("cache_control") == {"type": "ephemeral"}  # the one breakpoint: last block


async def test_tool_choice_mapping_and_defaults():
    with FakeAnthropic([Reply(text="a"), Reply(text="b"), Reply(text="c")]) as srv:
        model = claude(srv, prompt_cache=False, parallel_tool_calls=False)
        await model.request(
            ModelRequest(
                messages=ask(),
                tools=[ZOOM],
                tool_choice="required",
                settings=ModelSettings(temperature=0.5),
            )
        )
        await model.request(ModelRequest(messages=ask(), tools=[ZOOM], tool_choice="none"))
        await model.request(ModelRequest(messages=ask()))
        await model.aclose()
        b1, b2, b3 = srv.bodies
    assert b1["tool_choice"] == {"type": "any", "disable_parallel_tool_use": True}
    assert b1["temperature"] == 0.5 and b1["max_tokens"] == 4096
    assert b2["tool_choice"] == {"type": "none"}
    assert "tools" not in b3 and "tool_choice" not in b3
    assert "cache_control" not in str(b1)


async def test_cache_breakpoints_only_when_asked():
    """Off by default (GIANT's requests carry none); a preset (scout) or --prompt-cache turns
    them on: the end of the first turn and the last block."""
    with FakeAnthropic([Reply(text="a"), Reply(text="b")]) as srv:
        model = claude(srv)
        await model.request(ModelRequest(messages=ask()))
        await model.request(ModelRequest(messages=ask(), settings=ModelSettings(prompt_cache=True)))
        await model.aclose()
        off, on = srv.bodies
    assert "cache_control" not in str(off)
    assert on["messages"][0]["content"][-1]["cache_control"] == {"type": "ephemeral"}


async def test_final_step_without_tools_keeps_history_valid():
    msgs = ask() + [
        AssistantMessage(
            parts=[
                ToolCallPart(
                    id="toolu_1", name="slide_zoom", arguments={"x0": 0, "y0": 0, "w": 1, "h": 1}
                )
            ]
        ),
        ToolMessage(
            results=[
                ToolResultPart(
                    tool_call_id="toolu_1",
                    name="slide_zoom",
                    is_error=True,
                    content=[TextPart(text="Error: box outside the slide")],
                )
            ]
        ),
        UserMessage(parts=[TextPart(text="Give your final answer now.")]),
    ]
    with FakeAnthropic([Reply(text="Liver.")]) as srv:  # strict: tool blocks need tools defined
        model = claude(srv)
        resp = await model.request(ModelRequest(messages=msgs, tools=[], tool_choice="none"))
        await model.aclose()
        body = srv.last_body
    assert resp.message.text == "Liver."
    assert [t["name"] for t in body["tools"]] == ["slide_zoom"] and body["tool_choice"] == {
        "type": "none"
    }
    user = body["messages"][2]["content"]  # tool_result first, then the user's text, in one turn
    assert (
        user[0]["type"] == "tool_result"
        and user[0]["is_error"] is True
        and user[1]["type"] == "text"
    )


async def test_empty_text_and_foreign_reasoning_are_left_out():
    msgs = ask() + [
        AssistantMessage(
            parts=[
                ReasoningPart(
                    text="x",
                    provider="openai-responses",
                    provider_data={"type": "reasoning", "id": "rs"},
                ),
                TextPart(text=""),
                TextPart(text="Hmm."),
            ]
        ),
        UserMessage(parts=[TextPart(text="  "), TextPart(text="continue")]),
    ]
    with FakeAnthropic([Reply(text="ok")]) as srv:
        model = claude(srv)
        await model.request(ModelRequest(messages=msgs))
        await model.aclose()
        assert srv.last_body["messages"][1]["content"] == [{"type": "text", "text": "Hmm."}]


async def test_usage_cache_tokens_and_builtin_cost(monkeypatch):
    from slidescout.agents.models.providers import AnthropicProvider

    monkeypatch.setattr(AnthropicProvider, "custom_endpoint", property(lambda self: False))
    with FakeAnthropic(
        [Reply(text="ok", usage={"input": 100, "cached": 800, "cache_write": 100, "output": 50})]
    ) as srv:
        model = claude(srv)
        resp = await model.request(ModelRequest(messages=ask()))
        await model.aclose()
    u = resp.usage
    assert (u.input_tokens, u.cached_input_tokens, u.output_tokens) == (1000, 800, 50)
    assert u.cost_usd == pytest.approx((100 * 3.0 + 800 * 0.3 + 100 * 3.75 + 50 * 15.0) / 1e6)


async def test_non_object_tool_input_is_a_parse_error():
    with FakeAnthropic(
        [Reply(tool_calls=[ToolCall("slide_zoom", raw_arguments="{not json")])]
    ) as srv:
        model = claude(srv)
        resp = await model.request(ModelRequest(messages=ask(), tools=[ZOOM]))
        await model.aclose()
    (call,) = resp.message.tool_calls
    assert call.parse_error and call.raw_arguments == "{not json"


async def test_faults_overloaded_rate_limit_and_auth():
    with FakeAnthropic(
        [
            Fault(529, "Overloaded"),
            Fault(429, retry_after=0.02),
            Reply(text="ok"),
            Fault(404, "model: claude-nope"),
        ]
    ) as srv:
        model = claude(srv)
        resp = await model.request(ModelRequest(messages=ask()))
        assert [(r.reason, r.wait_s) for r in resp.retries][0][0] == "529"
        assert resp.retries[1].wait_s == 0.02
        with pytest.raises(ModelError) as ei:
            await model.request(ModelRequest(messages=ask()))
        await model.aclose()
    assert (
        ei.value.status == 404 and not ei.value.retryable and "check the model id" in str(ei.value)
    )


async def test_strict_fake_rejects_unpaired_tool_use():
    # guards the guard: a history with an unanswered tool_use is refused like the real API does
    msgs = ask() + [
        AssistantMessage(parts=[ToolCallPart(id="toolu_9", name="slide_zoom", arguments={})]),
        UserMessage(parts=[TextPart(text="hello")]),
    ]
    with FakeAnthropic([Reply(text="never")]) as srv:
        model = claude(srv)
        with pytest.raises(ModelError, match="tool_result"):
            await model.request(ModelRequest(messages=msgs, tools=[ZOOM]))
        await model.aclose()
