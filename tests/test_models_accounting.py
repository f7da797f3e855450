"""Token and cost accounting by each provider's published rules (``agents.models.accounting``): one
test per rule, each naming the page the rule comes from (``data/token_rules.toml``)."""

from __future__ import annotations

import pytest

from slidescout.agents.models import RetryPolicy, resolve_model
from slidescout.agents.models.accounting import (
    anthropic_min_cache_tokens,
    bill,
    claude_image_size,
    claude_image_tokens,
    context_window,
    estimate_request,
    openai_cached_tokens,
    openai_image_tokens,
    rule_source,
)
from slidescout.agents.models.pricing import Price
from slidescout.core.messages import ModelRequest, TextPart, UserMessage
from slidescout.testing.fake_anthropic import FakeAnthropic
from slidescout.testing.fake_billing import AnthropicCache, OpenAICache
from slidescout.testing.fake_common import jpeg_image_part
from slidescout.testing.fake_openai import FakeOpenAI, Reply

FAST = RetryPolicy(max_retries=0)


def test_every_rule_names_its_source() -> None:
    for path in [
        ("text",),
        ("anthropic", "image"),
        ("anthropic", "cache"),
        ("anthropic", "thinking"),
        ("openai", "image"),
        ("openai", "cache"),
        ("openai", "reasoning"),
        ("context_window",),
    ]:
        assert rule_source(*path).startswith("https://"), path


def test_claude_image_tokens_are_w_h_over_750() -> None:
    """docs.anthropic.com vision: tokens = width x height / 750 (1000 x 1000 is about 1334,
    1092 x 1092 about 1590, 200 x 200 about 54)."""
    assert "anthropic.com" in rule_source("anthropic", "image")
    assert claude_image_tokens(1000, 1000) == 1334
    assert claude_image_tokens(1092, 1092) == 1590
    assert claude_image_tokens(200, 200) == 54
    assert claude_image_tokens(500, 375) == 250  # a giant/scout view for Claude (500 px)


def test_claude_resizes_large_images_first() -> None:
    """Long edge over 1568 px, or over about 1600 tokens: scaled down (aspect kept) first."""
    w, h = claude_image_size(3000, 2000)
    assert max(w, h) <= 1568 and w * h / 750 <= 1600 and abs(w / h - 1.5) < 0.01
    assert claude_image_tokens(3000, 2000) <= 1600
    assert claude_image_size(4000, 200) == (1568, 78)  # the long edge alone
    assert claude_image_size(800, 600) == (800, 600)  # never up


def test_openai_tile_rule_for_gpt_4o_class_models() -> None:
    """platform.openai.com images-vision: fit 2048, short side to 768, 512 px tiles; gpt-4o
    85 + 170 per tile (1024 x 1024: 765; 2048 x 4096: 1105); detail low: the base only."""
    assert "openai.com" in rule_source("openai", "image")
    assert openai_image_tokens("gpt-4o", 1024, 1024, "high") == 765
    assert openai_image_tokens("gpt-4o", 2048, 4096, "high") == 1105
    assert openai_image_tokens("gpt-4o-2024-11-20", 4096, 8192, "low") == 85
    assert openai_image_tokens("gpt-4o", 1024, 1024, None) == 765  # unset: counted as high
    # gpt-5: 70 + 140 per tile; a 1000 px giant view is 4 tiles
    assert openai_image_tokens("gpt-5", 1000, 1000, "high") == 70 + 4 * 140
    assert openai_image_tokens("gpt-5-2025-08-07", 1000, 750, "high") == 70 + 4 * 140
    assert openai_image_tokens("o3", 512, 512, "high") == 75 + 150
    assert openai_image_tokens("gpt-4o-mini", 512, 512, "high") == 2833 + 5667


def test_openai_patch_rule_for_the_models_that_use_it() -> None:
    """32 px patches (at most 1536, scaled to whole patches) times the model's multiplier:
    1800 x 2400 is 1452 patches; gpt-4.1-mini 1.62, gpt-5-nano 2.46, o4-mini 1.72."""
    assert openai_image_tokens("gpt-4.1-mini", 1024, 1024) == 1659  # 1024 patches x 1.62
    assert openai_image_tokens("gpt-4.1-mini", 1800, 2400) == 2353  # 1452 x 1.62, rounded up
    assert openai_image_tokens("gpt-5-nano", 64, 64, "low") == 10  # 4 x 2.46: no low detail
    assert openai_image_tokens("o4-mini", 3200, 3200) == 2617  # 39 x 39 = 1521 patches x 1.72


def test_anthropic_cache_writes_1_25x_and_reads_0_1x() -> None:
    """prompt-caching pricing: 5-minute writes at 1.25x the input price, reads at 0.1x (applied
    when the price table gives no cached or cache-write price)."""
    assert "prompt-caching" in rule_source("anthropic", "cache")
    b = bill(
        "anthropic",
        Price(input=3.0, output=15.0),
        input_tokens=1_000_000,
        cached_input_tokens=500_000,
        cache_write_tokens=200_000,
        output_tokens=0,
    )
    assert b.cache_read_usd == pytest.approx(0.5 * 0.3)
    assert b.cache_write_usd == pytest.approx(0.2 * 3.75)
    assert b.input_usd == pytest.approx(0.3 * 3.0)
    assert b.usd == pytest.approx(b.input_usd + b.cache_read_usd + b.cache_write_usd)
    assert b.uncached_usd == pytest.approx(3.0)
    assert anthropic_min_cache_tokens("claude-sonnet-4-5-20250929") == 1024
    assert anthropic_min_cache_tokens("claude-haiku-4-5") == 4096


def test_openai_prefix_cache_from_1024_tokens_in_128_steps() -> None:
    """prompt-caching: automatic for prompts of 1024 tokens or more, in 128-token increments,
    billed at the model's cached price."""
    assert "prompt-caching" in rule_source("openai", "cache")
    assert [openai_cached_tokens(n) for n in (1023, 1024, 1151, 1152, 5000)] == [
        0,
        1024,
        1024,
        1152,
        4992,
    ]
    b = bill(
        "openai",
        Price(input=1.25, output=10.0, cached_input=0.125),
        input_tokens=10_000,
        cached_input_tokens=8_192,
        output_tokens=0,
    )
    assert b.usd == pytest.approx((1808 * 1.25 + 8192 * 0.125) / 1e6)


def test_reasoning_and_thinking_tokens_are_billed_as_output() -> None:
    """Reasoning (OpenAI) and thinking (Claude) tokens are part of output_tokens, at the output
    price, and not counted twice."""
    assert "reasoning" in rule_source("openai", "reasoning")
    assert "extended-thinking" in rule_source("anthropic", "thinking")
    b = bill("openai", Price(input=1.0, output=10.0), input_tokens=0, output_tokens=300)
    assert b.output_usd == pytest.approx(300 * 10.0 / 1e6)


def test_estimate_counts_text_and_images_by_the_providers_rules() -> None:
    image = jpeg_image_part(1000, 750)
    req = ModelRequest(messages=[UserMessage(parts=[TextPart(text="x" * 400), image])])
    assert estimate_request("openai", "gpt-5", req) == 100 + 630
    assert estimate_request("anthropic", "claude-sonnet-4-5", req) == 100 + 1000


async def test_the_response_wins_and_the_estimate_stays_beside(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-0000000000")
    req = ModelRequest(
        messages=[UserMessage(parts=[TextPart(text="x" * 400), jpeg_image_part(1000, 750)])]
    )
    usage = {"input": 2000, "cached": 1024, "output": 300, "reasoning": 200}
    with FakeOpenAI([Reply(text="A", usage=usage)]) as srv:
        price = Price(input=1.25, output=10.0, cached_input=0.125)
        model = resolve_model(
            "openai:gpt-5", base_url=srv.base_url, api="responses", retry=FAST, price=price
        )
        resp = await model.request(req)
        await model.aclose()
    u = resp.usage
    assert (u.input_tokens, u.cached_input_tokens, u.output_tokens, u.reasoning_tokens) == (
        2000,
        1024,
        300,
        200,
    )
    assert u.estimated_input_tokens == estimate_request("openai", "gpt-5", req) != 2000
    assert u.cost_usd == pytest.approx((976 * 1.25 + 1024 * 0.125 + 300 * 10.0) / 1e6)
    assert u.cache_read_usd == pytest.approx(1024 * 0.125 / 1e6)
    assert u.uncached_usd == pytest.approx((2000 * 1.25 + 300 * 10.0) / 1e6)


def test_context_windows_are_known_for_the_providers_models() -> None:
    assert context_window("openai", "gpt-5-2025-08-07") == 400_000
    assert context_window("anthropic", "claude-sonnet-4-5") == 200_000
    assert context_window("openai", "my-local-vlm") is None


def _anthropic_body(n_blocks: int, *, breakpoint_last: bool = True) -> dict:
    blocks = [{"type": "text", "text": f"block {i} " + "y" * 2000} for i in range(n_blocks)]
    if breakpoint_last:
        blocks[-1] = {**blocks[-1], "cache_control": {"type": "ephemeral"}}
    return {"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": blocks}]}


def test_the_fake_anthropic_cache_writes_then_reads_past_breakpoints() -> None:
    cache = AnthropicCache()
    first = cache.usage(_anthropic_body(3))
    assert first["cached"] == 0 and first["cache_write"] > 1024 and first["input"] == 0
    second = cache.usage(_anthropic_body(5))  # the same 3 blocks, then 2 more
    assert second["cached"] == first["cache_write"] and second["cache_write"] > 0
    short = AnthropicCache().usage(_anthropic_body(1) | {"model": "claude-haiku-4-5"})
    assert short["cached"] == short["cache_write"] == 0  # under Haiku 4.5's 4096-token minimum
    far = AnthropicCache()
    far.usage(_anthropic_body(2))
    assert far.usage(_anthropic_body(30))["cached"] == 0  # beyond the 20-block lookback


def test_the_fake_openai_cache_serves_a_seen_prefix() -> None:
    cache = OpenAICache()
    item = {"role": "user", "content": "z" * 4000}
    body = {"model": "gpt-5", "input": [item]}
    assert cache.usage(body) == {"input": 1000, "cached": 0}  # under 1024 tokens
    body2 = {"model": "gpt-5", "input": [item, item]}
    assert cache.usage(body2) == {"input": 2000, "cached": 0}  # the 1000-token prefix: too short
    body3 = {"model": "gpt-5", "input": [item, item, item]}
    assert cache.usage(body3) == {"input": 3000, "cached": 1920}  # 2000 in 128-token steps


async def test_the_fake_anthropic_reports_cache_reads_and_writes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Through the adapter: the second request reads what the first wrote, billed by the rules."""
    from slidescout.core.model_settings import ModelSettings

    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test-0000000")
    long_text = TextPart(text="w" * 6000)
    msgs = [UserMessage(parts=[long_text])]
    with FakeAnthropic([Reply(text="a"), Reply(text="b")]) as srv:
        model = resolve_model(
            "anthropic:claude-sonnet-4-5",
            base_url=srv.base_url,
            retry=FAST,
            price=Price(input=3.0, output=15.0),
        )
        on = ModelSettings(prompt_cache=True)
        a = await model.request(ModelRequest(messages=msgs, settings=on))
        b = await model.request(ModelRequest(messages=msgs, settings=on))
        await model.aclose()
    assert a.usage.cache_write_tokens > 1024 and a.usage.cached_input_tokens == 0
    assert b.usage.cached_input_tokens == a.usage.cache_write_tokens
    assert b.usage.cost_usd is not None and a.usage.cost_usd is not None
    assert b.usage.cost_usd < a.usage.cost_usd < a.usage.uncached_usd * 1.3  # type: ignore[operator]
