"""The retry decision and policy: headers, backoff caps, total-wait cap, bugs not retried."""

from __future__ import annotations

import email.utils
import subprocess
import sys
import time

import pytest

from slidescout.agents.models import RetryPolicy, resolve_model
from slidescout.agents.models.retry import call_with_retries, parse_retry_after
from slidescout.core.messages import ModelRequest, TextPart, UserMessage
from slidescout.errors import ModelError
from slidescout.testing.fake_openai import FakeOpenAI, Fault, Reply


def test_parse_retry_after():
    assert parse_retry_after({"retry-after-ms": "250"}) == 0.25
    assert parse_retry_after({"retry-after": "3"}) == 3.0
    assert parse_retry_after({"retry-after-ms": "x", "retry-after": "1.5"}) == 1.5
    date = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 25 < parse_retry_after({"retry-after": date}) <= 30
    assert parse_retry_after({"retry-after": "soon"}) is None
    assert parse_retry_after({}) is None and parse_retry_after(None) is None


def test_backoff_is_exponential_jittered_and_capped():
    p = RetryPolicy(base_wait_s=1.0, max_wait_s=5.0, jitter=0.25)
    for n, base in ((1, 1.0), (2, 2.0), (3, 4.0)):
        w = p.backoff(n)
        assert base <= w <= min(5.0, base * 1.25)
    assert p.backoff(10) == 5.0


def test_unknown_exceptions_are_not_provider_errors(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-0000000")
    model = resolve_model("openai:gpt-5")
    assert model.should_retry(ValueError("bug")) is None  # a bug: propagates unchanged
    decision = model.should_retry(ModelError("x", retryable=True))
    assert decision is not None and decision.retry is True


def test_classifying_an_error_imports_no_sdk():
    """Each adapter classifies its own errors; an unrelated exception imports no SDK (it took
    28 s under load when the classifier imported both)."""
    code = (
        "import sys, os; os.environ['OPENAI_API_KEY'] = 'sk-x'\n"
        "from slidescout.agents.models import resolve_model\n"
        "m = resolve_model('openai:gpt-5'); a = resolve_model('anthropic:claude-x', "
        "base_url='http://127.0.0.1:9')\n"
        "assert m.should_retry(ValueError()) is None and a.should_retry(KeyError()) is None\n"
        "print(sorted(k for k in ('openai', 'anthropic') if k in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


async def test_an_adapter_does_not_take_another_sdks_errors(monkeypatch):
    """An Anthropic SDK error raised inside an OpenAI adapter's call is not its provider error."""
    import anthropic
    import httpx

    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-0000000")
    with FakeOpenAI([Reply(text="x")]) as srv:
        model = resolve_model("openai:gpt-5", base_url=srv.base_url)
        assert (
            model.provider.client is not None
        )  # the SDK's classes are known once the client exists
        foreign = anthropic.APITimeoutError(request=httpx.Request("GET", "http://x"))
        assert model.should_retry(foreign) is None
        import openai

        own = openai.APITimeoutError(request=httpx.Request("GET", "http://x"))
        decision = model.should_retry(own)
        assert decision is not None and decision.retry and decision.reason == "timeout"
        await model.aclose()


async def test_bugs_propagate_unchanged():
    async def boom():
        raise KeyError("bug")

    with pytest.raises(KeyError):
        await call_with_retries(boom, RetryPolicy(base_wait_s=0.01), label="m")


async def test_total_wait_cap(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-0000000")
    policy = RetryPolicy(max_retries=10, base_wait_s=0.01, max_wait_s=1.0, max_total_wait_s=0.25)
    with FakeOpenAI([Fault(429, retry_after=0.1)] * 10 + [Reply(text="late")]) as srv:
        model = resolve_model("openai:gpt-5", base_url=srv.base_url, retry=policy)
        with pytest.raises(ModelError) as ei:
            await model.request(ModelRequest(messages=[UserMessage(parts=[TextPart(text="q")])]))
        await model.aclose()
        assert len(srv.requests) == 3
    assert ei.value.retryable and ei.value.status == 429 and len(ei.value.retries) == 2
    assert "429 rate limit, 429 rate limit" in str(ei.value)


async def test_max_retries_zero(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-0000000")
    with FakeOpenAI([Fault(503), Reply(text="x")]) as srv:
        model = resolve_model("openai:gpt-5", base_url=srv.base_url, max_retries=0)
        with pytest.raises(ModelError) as ei:
            await model.request(ModelRequest(messages=[UserMessage(parts=[TextPart(text="q")])]))
        await model.aclose()
    assert ei.value.retryable and "gave up after 1 attempt;" in str(ei.value)
