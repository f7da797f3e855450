"""API keys never appear in errors, logs, reprs, responses or request bodies."""

from __future__ import annotations

import logging
import socket
import traceback

import pytest

from slidescout.agents.models import RetryPolicy, resolve_model
from slidescout.core.messages import ModelRequest, TextPart, ToolSpec, UserMessage
from slidescout.errors import ModelError
from slidescout.testing.fake_anthropic import FakeAnthropic
from slidescout.testing.fake_openai import FakeOpenAI, Fault, Reply, ToolCall, hang

SENTINEL = "sk-SENTINEL-7f3a9c2e5b1d8046"
FAST = RetryPolicy(max_retries=1, base_wait_s=0.01, max_wait_s=0.05)
TOOL = ToolSpec(name="t", description="d", parameters={"type": "object", "properties": {}})
REQ = ModelRequest(messages=[UserMessage(parts=[TextPart(text="hello")])], tools=[TOOL])
ECHO = f"Incorrect API key provided: {SENTINEL}. Bearer {SENTINEL}"

CASES = [
    ("openai:gpt-5", "responses", FakeOpenAI),
    ("openai:gpt-4o", "chat", FakeOpenAI),
    ("anthropic:claude-sonnet-4-5", "auto", FakeAnthropic),
]


def _clean(text: str) -> None:
    assert SENTINEL not in text
    assert "SENTINEL" not in text


def _check_error(err: BaseException) -> None:
    _clean(str(err))
    _clean(repr(err))
    _clean("".join(traceback.format_exception(err)))


@pytest.fixture(autouse=True)
def _sentinel_keys(monkeypatch, caplog):
    monkeypatch.setenv("OPENAI_API_KEY", SENTINEL)
    monkeypatch.setenv("ANTHROPIC_API_KEY", SENTINEL)
    caplog.set_level(logging.DEBUG)  # SDK and httpx debug logs included
    yield
    _clean(caplog.text)


@pytest.mark.parametrize("model_id,api,fake", CASES)
async def test_key_absent_everywhere(model_id, api, fake, monkeypatch):
    from slidescout.agents.models.providers import Provider

    # treat the fake as the provider's own endpoint so the real key is used, as in production
    monkeypatch.setattr(Provider, "custom_endpoint", property(lambda self: False))
    script = [
        Fault(400, ECHO),
        Fault(500, ECHO),
        Fault(500, ECHO),
        hang(30),
        hang(30),
        Reply(text="fine", tool_calls=[ToolCall("t", raw_arguments="{bad")]),
    ]
    with fake(script) as srv:
        model = resolve_model(model_id, base_url=srv.base_url, api=api, retry=FAST, timeout_s=2.0)
        _clean(repr(model))
        for _ in range(3):  # a 400, exhausted 500s, exhausted timeouts
            with pytest.raises(ModelError) as ei:
                await model.request(REQ)
            _check_error(ei.value)
        resp = await model.request(REQ)
        _clean(resp.model_dump_json())
        await model.aclose()
        assert (
            srv.requests[0].headers.get("authorization", "").endswith(SENTINEL)
            or srv.requests[0].headers.get("x-api-key") == SENTINEL
        )  # it was sent, as a header only
        for r in srv.requests:
            _clean(str(r.body))
    with fake([], api_key="another-key") as srv:  # the server echoes the wrong key back
        model = resolve_model(model_id, base_url=srv.base_url, api=api, retry=FAST)
        with pytest.raises(ModelError) as ei:
            await model.request(REQ)
        await model.aclose()
    assert ei.value.status == 401 and "[redacted]" in str(ei.value)
    _check_error(ei.value)


async def test_connection_errors_are_clean():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    model = resolve_model(
        "openai:gpt-5", base_url=f"http://127.0.0.1:{port}/v1", api="responses", retry=FAST
    )
    with pytest.raises(ModelError) as ei:
        await model.request(REQ)
    await model.aclose()
    _check_error(ei.value)


def test_provider_cannot_be_pickled():
    import pickle

    model = resolve_model("openai:gpt-5")
    with pytest.raises(TypeError):
        pickle.dumps(model.provider)
