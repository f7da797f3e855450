"""Model ids, API choice, options and keys (no network: nothing is requested here)."""

from __future__ import annotations

import pytest

from slidescout.agents.models import Model, choose_openai_api, parse_model_id, resolve_model
from slidescout.errors import ConfigError


@pytest.fixture
def keys(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-fake-openai-key-0000")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-fake-key-0000")


def test_parse_ids():
    assert parse_model_id("openai:gpt-5") == ("openai", "gpt-5")
    assert parse_model_id("openai:qwen2.5vl:7b") == ("openai", "qwen2.5vl:7b")
    assert parse_model_id("anthropic:claude-sonnet-4-5") == ("anthropic", "claude-sonnet-4-5")
    assert parse_model_id("expert") == ("expert", "")
    assert parse_model_id("replay:/tmp/x.json") == ("replay", "/tmp/x.json")
    for bad in ("", "gpt-5", "openai:", "google:gemini", "openai:gpt 5"):
        with pytest.raises(ConfigError) as ei:
            parse_model_id(bad)
        assert "anthropic:MODEL" in str(ei.value)  # the message lists the valid forms


def test_api_choice():
    assert choose_openai_api(None) == "responses"
    assert choose_openai_api("https://api.openai.com/v1") == "responses"
    assert choose_openai_api("http://localhost:8000/v1") == "chat"
    assert choose_openai_api("http://localhost:8000/v1", "responses") == "responses"
    assert choose_openai_api(None, "chat") == "chat"
    with pytest.raises(ConfigError):
        choose_openai_api(None, "completions")


def test_resolve_openai_and_anthropic(keys):
    m = resolve_model("openai:gpt-5")
    assert isinstance(m, Model)
    assert (m.name, m.api, m.profile.tools, m.profile.images) == (
        "openai:gpt-5",
        "openai-responses",
        True,
        True,
    )
    local = resolve_model("openai:qwen2.5-vl", base_url="http://localhost:8000/v1")
    assert local.api == "openai-chat" and local.name == "openai:qwen2.5-vl"
    assert (
        resolve_model("openai:qwen2.5-vl", base_url="http://localhost:8000/v1", api="responses").api
        == "openai-responses"
    )
    assert resolve_model("openai:gpt-4o", api="chat").api == "openai-chat"
    a = resolve_model("anthropic:claude-sonnet-4-5")
    assert a.api == "anthropic-messages" and a.name == "anthropic:claude-sonnet-4-5"
    assert (
        resolve_model("anthropic:claude-x", base_url="http://127.0.0.1:9/").base_url
        == "http://127.0.0.1:9"
    )
    with pytest.raises(ConfigError, match="does not apply to anthropic: models"):
        resolve_model("anthropic:claude-sonnet-4-5", api="chat")


def test_tools_support_defaults_and_override(keys):
    assert not resolve_model("openai:llava:13b", base_url="http://localhost:11434/v1").profile.tools
    assert resolve_model(
        "openai:llava:13b", base_url="http://localhost:11434/v1", tools=True
    ).profile.tools
    assert not resolve_model(
        "openai:qwen", base_url="http://localhost:1/v1", tools=False
    ).profile.tools


def test_unknown_option_lists_valid_ones(keys):
    with pytest.raises(ConfigError) as ei:
        resolve_model("openai:gpt-5", reasoning_efort="low")
    assert "reasoning_effort" in str(ei.value)
    with pytest.raises(ConfigError):
        resolve_model("anthropic:claude-sonnet-4-5", thinking_budget=10)


def test_missing_keys_name_the_env_var(monkeypatch):
    with pytest.raises(ConfigError, match="OPENAI_API_KEY"):
        resolve_model("openai:gpt-5")
    with pytest.raises(ConfigError, match="ANTHROPIC_API_KEY"):
        resolve_model("anthropic:claude-sonnet-4-5")
    # a local server needs no key
    m = resolve_model("openai:qwen2.5-vl", base_url="http://localhost:8000/v1")
    assert m.api == "openai-chat"


def test_env_base_url_counts_as_custom(monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:8000/v1")
    m = resolve_model("openai:qwen")
    assert m.api == "openai-chat" and m.base_url == "http://127.0.0.1:8000/v1"


def test_expert_and_replay_routing(tmp_path, monkeypatch):
    import importlib

    real = importlib.import_module

    def fake_import(name, *a, **k):
        if name == "slidescout.agents.models.expert":
            raise ImportError("No module named 'slidescout.agents.models.expert'")
        return real(name, *a, **k)

    monkeypatch.setattr(importlib, "import_module", fake_import)
    with pytest.raises(ConfigError, match="expert planner"):
        resolve_model("expert")
    monkeypatch.setattr(importlib, "import_module", real)
    assert type(resolve_model("expert")).__name__ == "ExpertModel"
    with pytest.raises(ConfigError, match="not a trace file"):
        resolve_model(f"replay:{tmp_path / 'nope.json'}")


def test_repr_hides_key(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-SENTINEL-do-not-leak-42")
    m = resolve_model("openai:gpt-5")
    assert (
        "SENTINEL" not in repr(m)
        and "SENTINEL" not in repr(m.provider)
        and "SENTINEL" not in str(vars(m))
    )
