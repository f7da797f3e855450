"""The retry decision and policy: headers, backoff caps, total-wait cap, bugs not retried."""

from __future__ import annotations

import email.utils
import time

import pytest

from slidescout.agents.models import RetryPolicy, resolve_model
from slidescout.agents.models.retry import call_with_retries, parse_retry_after, should_retry
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


def test_unknown_exceptions_are_not_retried():
    assert should_retry(ValueError("bug")).retry is False
    assert should_retry(ModelError("x", retryable=True)).retry is True


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
