"""Pricing: built-in table, snapshots and aliases, unknown → None, user override file."""

from __future__ import annotations

import pytest

from slidescout.agents.models.pricing import Price, estimate_cost, load_price_table, price_table
from slidescout.errors import ConfigError


def test_builtin_prices_and_snapshots():
    table = load_price_table(use_env=False)
    gpt5 = table.lookup("openai", "gpt-5")
    assert gpt5 is not None and gpt5.input == 1.25 and gpt5.output == 10.0
    assert table.lookup("openai", "gpt-5-2025-08-07") == gpt5
    # the longest name wins: a mini snapshot is not priced as gpt-5
    assert table.lookup("openai", "gpt-5-mini-2025-08-07").input == 0.25
    assert table.lookup("openai", "gpt-4o-2024-08-06").input == 2.5
    assert table.lookup("anthropic", "claude-sonnet-4-5-20250929").output == 15.0
    assert table.lookup("anthropic", "claude-3-5-sonnet-latest").input == 3.0
    assert table.lookup("anthropic", "claude-opus-4-0").output == 75.0  # alias
    for name in ("gpt-5-nano", "gpt-4.1", "gpt-4o-mini", "o3", "o4-mini"):
        assert table.lookup("openai", name) is not None, name
    for name in ("claude-opus-4-1", "claude-haiku-4-5", "claude-3-5-sonnet"):
        assert table.lookup("anthropic", name) is not None, name
    assert table.meta["as_of"]


def test_unknown_model_is_none_not_zero():
    table = load_price_table(use_env=False)
    assert table.lookup("openai", "qwen2.5-vl") is None
    assert table.lookup("openai", "gpt-5-turbo-ultra") is None  # not a snapshot of gpt-5
    assert table.cost("openai", "qwen2.5-vl", input_tokens=10, output_tokens=10) is None
    # a custom endpoint is never priced from the built-in table
    assert table.lookup("openai", "gpt-5", custom_endpoint=True) is None


def test_cost_arithmetic_reasoning_billed_as_output():
    p = Price(input=1.25, output=10.0, cached_input=0.125)
    # 1M input of which 400k cached, 100k output (reasoning included)
    usd = p.cost(input_tokens=1_000_000, output_tokens=100_000, cached_input_tokens=400_000)
    assert usd == pytest.approx(0.6 * 1.25 + 0.4 * 0.125 + 0.1 * 10.0)
    a = Price(input=3.0, output=15.0, cached_input=0.3, cache_write=3.75)
    usd = a.cost(
        input_tokens=1_000_000,
        output_tokens=0,
        cached_input_tokens=500_000,
        cache_write_tokens=250_000,
    )
    assert usd == pytest.approx(0.25 * 3.0 + 0.5 * 0.3 + 0.25 * 3.75)


def test_user_file_overrides_and_extends(tmp_path, monkeypatch):
    f = tmp_path / "prices.toml"
    f.write_text(
        '[openai."gpt-5"]\ninput = 2.0\noutput = 20.0\n\n[openai."qwen2.5-vl"]\ninput = 0.1\noutput = 0.2\n'
    )
    monkeypatch.setenv("SLIDESCOUT_PRICING", str(f))
    table = price_table()
    assert table.lookup("openai", "gpt-5").input == 2.0
    assert table.lookup("openai", "gpt-5").source == str(f)
    assert table.lookup("openai", "qwen2.5-vl", custom_endpoint=True).output == 0.2
    assert estimate_cost(
        "openai", "qwen2.5-vl", input_tokens=1_000_000, output_tokens=0, custom_endpoint=True
    ) == pytest.approx(0.1)
    assert table.lookup("openai", "gpt-4o").input == 2.5  # built-ins still there


def test_user_file_under_slidescout_home(tmp_path, monkeypatch):
    monkeypatch.delenv("SLIDESCOUT_PRICING", raising=False)
    monkeypatch.setenv("SLIDESCOUT_HOME", str(tmp_path))
    (tmp_path / "pricing.toml").write_text('[anthropic."my-claude"]\ninput = 1\noutput = 2\n')
    assert price_table().lookup("anthropic", "my-claude").output == 2.0


def test_bad_user_files(tmp_path, monkeypatch):
    monkeypatch.setenv("SLIDESCOUT_PRICING", str(tmp_path / "missing.toml"))
    with pytest.raises(ConfigError, match="SLIDESCOUT_PRICING"):
        price_table()
    bad = tmp_path / "bad.toml"
    bad.write_text("[openai\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_price_table(bad)
    bad.write_text('[openai."x"]\ninput = 1\n')
    with pytest.raises(ConfigError, match="lacks 'output'"):
        load_price_table(bad)
