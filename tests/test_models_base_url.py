"""``--base-url http://HOST`` and ``http://HOST/v1`` both reach the API, for every provider and route
(issue 19 row 13: the Anthropic SDK appends ``/v1/messages`` to the host root, so ``/v1`` given by
the user once posted to ``/v1/v1/messages``)."""

from __future__ import annotations

import pytest

from slidescout.agents.models import RetryPolicy, resolve_model
from slidescout.agents.models.providers import api_root
from slidescout.core.messages import ModelRequest, TextPart, UserMessage
from slidescout.testing.fake_anthropic import FakeAnthropic
from slidescout.testing.fake_openai import FakeOpenAI, Reply

FAST = RetryPolicy(max_retries=0)


@pytest.fixture(autouse=True)
def _keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test-0000000")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-0000000000")


def test_api_root_rules() -> None:
    assert api_root("http://h:1", versioned=True) == "http://h:1/v1"
    assert api_root("http://h:1/", versioned=True) == "http://h:1/v1"
    assert api_root("http://h:1/v1/", versioned=True) == "http://h:1/v1"
    assert api_root("http://h:1/api/v1", versioned=True) == "http://h:1/api/v1"  # a prefix kept
    assert api_root("http://h:1/v1", versioned=False) == "http://h:1"
    assert api_root("http://h:1/v1/", versioned=False) == "http://h:1"
    assert api_root("http://h:1", versioned=False) == "http://h:1"
    assert api_root("http://h:1/proxy", versioned=False) == "http://h:1/proxy"


@pytest.mark.parametrize("suffix", ["", "/", "/v1", "/v1/"])
@pytest.mark.parametrize(
    ("model_id", "api", "path"),
    [
        ("openai:gpt-5", "responses", "/v1/responses"),
        ("openai:gpt-4o", "chat", "/v1/chat/completions"),
        ("anthropic:claude-sonnet-4-5", "auto", "/v1/messages"),
    ],
)
async def test_both_forms_of_the_base_url_reach_the_api(
    model_id: str, api: str, path: str, suffix: str
) -> None:
    server = FakeAnthropic if model_id.startswith("anthropic") else FakeOpenAI
    async with server([Reply(text="ok")]) as srv:
        model = resolve_model(model_id, base_url=srv.url + suffix, api=api, retry=FAST)  # type: ignore[arg-type]
        try:
            resp = await model.request(
                ModelRequest(messages=[UserMessage(parts=[TextPart(text="hi")])])
            )
        finally:
            await model.aclose()
        assert [r.path for r in srv.requests] == [path]
    assert resp.message.text == "ok"
