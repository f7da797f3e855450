"""Settings decided once per request: profiles, the merge (model < preset < flags), no leaks."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cli_helpers import run_cli
from pydantic import ValidationError
from slidefactory import make_tiff

from slidescout.agents.config import AgentConfig
from slidescout.agents.loop import make_agent
from slidescout.agents.models import Model, resolve_model, resolve_settings
from slidescout.agents.models.profile import permissive_profile
from slidescout.core.model_settings import ModelSettings
from slidescout.errors import ConfigError
from slidescout.eval.ask import question_sample
from slidescout.eval.executors import LimitedModel
from slidescout.testing.fake_anthropic import FakeAnthropic
from slidescout.testing.fake_openai import FakeOpenAI, Reply
from slidescout.traces.rundir import RunDir

ANSWER = Reply(text='<response>{"answer": 1}</response>')


@pytest.fixture(autouse=True)
def _keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-settings-0000")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test-settings-0000")


@pytest.fixture(scope="module")
def slide(tmp_path_factory: pytest.TempPathFactory) -> Path:
    p = tmp_path_factory.mktemp("settings") / "s.tiff"
    make_tiff(p, 3000, 2000, mpp=0.25)
    return p


def test_the_leak_reproduction_prints_an_empty_dict() -> None:
    """The issue's one-liner: a model used by a giant agent carries nothing into a scout one."""
    code = (
        "from slidescout.agents.models import resolve_model as r;"
        "from slidescout.agents.loop import make_agent as m;"
        "x=r('openai:gpt-5');m(x,preset='giant');"
        "print(m(x,preset='scout').config()['protocol']['model_settings'])"
    )
    env = {**os.environ, "OPENAI_API_KEY": "sk-x"}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "{'parallel_tool_calls': True}"  # scout's own, nothing of giant's


def test_an_agent_never_changes_its_model() -> None:
    model = resolve_model("openai:gpt-5")
    before = (model.settings, model.profile)
    giant = make_agent(model, preset="giant", reasoning_effort="low")
    assert giant.settings.model.settings.reasoning_effort == "low"
    assert (model.settings, model.profile) == before
    assert make_agent(model, preset="scout").settings.model.settings.given() == {
        "parallel_tool_calls": True
    }


def test_layers_merge_model_then_preset_then_flags() -> None:
    profile = permissive_profile("function:x")
    resolved = resolve_settings(
        profile,
        model=ModelSettings(max_output_tokens=100, temperature=0.5),
        preset=ModelSettings(max_output_tokens=200, reasoning_effort="high"),
        user=ModelSettings(reasoning_effort="low"),
    )
    assert resolved.settings.given() == {
        "max_output_tokens": 200,
        "temperature": 0.5,
        "reasoning_effort": "low",
    }
    with pytest.raises(ValidationError):  # frozen: a request's settings cannot be changed
        resolved.settings.temperature = 1.0  # type: ignore[misc]


def test_a_preset_setting_the_route_cannot_carry_is_dropped_and_recorded() -> None:
    agent = make_agent("openai:gpt-4o", preset="giant")  # not a reasoning model
    kept = {"tool_result_images": "inline", "request_layout": "giant"}
    assert agent.settings.model.settings.given() == kept
    protocol = agent.config()["protocol"]
    assert protocol["model_settings"] == kept  # type: ignore[index]
    dropped = protocol["model_settings_dropped"]  # type: ignore[index]
    assert set(dropped) == {"reasoning_effort", "reasoning_summary"}


def test_a_flag_the_route_cannot_carry_is_one_error_line() -> None:
    with pytest.raises(ConfigError, match="is a reasoning model, which takes no --temperature"):
        AgentConfig(model="openai:gpt-5", temperature=0.2).check()
    with pytest.raises(ConfigError, match="not to expert"):
        AgentConfig(model="expert", max_output_tokens=10).check()
    with pytest.raises(ConfigError, match="cannot be sent with extended thinking"):
        AgentConfig(model="anthropic:claude-sonnet-4-5", preset="giant", temperature=0).check()
    # a seed is a hint: sent where the route takes one, never an error
    AgentConfig(model="openai:gpt-5", seed=3).check()


def test_reasoning_effort_bogus_is_one_line_before_any_request(
    capsys: pytest.CaptureFixture[str], slide: Path, tmp_path: Path
) -> None:
    with FakeOpenAI([ANSWER]) as srv:
        rc, out, err = run_cli(
            capsys,
            "ask",
            slide,
            "What is it?",
            "-m",
            "openai:gpt-5",
            "--base-url",
            srv.base_url,
            "--api",
            "responses",
            "--reasoning-effort",
            "bogus",
            "-o",
            tmp_path / "run",
        )
        assert srv.requests == []
    assert rc == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --reasoning-effort")
    assert "'high'" in lines[0] and "Traceback" not in err


def test_reasoning_summary_on_the_chat_route_names_api_responses(
    capsys: pytest.CaptureFixture[str], slide: Path, tmp_path: Path
) -> None:
    rc, out, err = run_cli(
        capsys,
        "ask",
        slide,
        "What is it?",
        "-m",
        "openai:gpt-5",
        "--base-url",
        "http://127.0.0.1:9/v1",
        "--reasoning-summary",
        "detailed",
        "-o",
        tmp_path / "run",
    )
    lines = err.strip().splitlines()
    assert rc == 2 and len(lines) == 1
    assert "chat route" in lines[0] and "--api responses" in lines[0]
    assert "reasoning_summary" not in lines[0] and "valid options" not in lines[0]


def test_giant_takes_the_responses_api_behind_a_base_url(slide: Path, tmp_path: Path) -> None:
    with FakeOpenAI([ANSWER]) as srv:
        agent = make_agent(
            "openai:gpt-5", preset="giant", base_url=srv.base_url, max_steps=2
        )  # --api auto
        assert agent.model.profile.api == "openai-responses"
        _run(agent, slide, tmp_path)
        body = srv.bodies[0]
    assert body["reasoning"] == {"effort": "high", "summary": "detailed"}
    with pytest.raises(ConfigError, match="--api responses"):
        AgentConfig(model="openai:gpt-5", preset="giant", base_url=srv.base_url, api="chat").check()


def test_giant_sends_claude_no_cache_breakpoints(slide: Path, tmp_path: Path) -> None:
    with FakeAnthropic([ANSWER]) as srv:
        agent = make_agent("anthropic:claude-sonnet-4-5", preset="giant", base_url=srv.base_url)
        _run(agent, slide, tmp_path)
        giant = srv.bodies[0]
    with FakeAnthropic([ANSWER]) as srv:
        agent = make_agent("anthropic:claude-sonnet-4-5", preset="scout", base_url=srv.base_url)
        _run(agent, slide, tmp_path / "scout")
        scout = srv.bodies[0]
    assert "cache_control" not in str(giant) and "cache_control" in str(scout)
    assert giant["thinking"] == {"type": "enabled", "budget_tokens": 1024}


@pytest.mark.parametrize(
    "model_id, expected",
    [
        ("openai:gpt-4o", {"temperature": 0.0, "max_tokens": 10000}),
        ("anthropic:claude-sonnet-4-5", {"max_tokens": 3000}),
    ],
)
def test_medframeqa_settings_are_per_route(
    model_id: str, expected: dict[str, Any], slide: Path, tmp_path: Path
) -> None:
    fake = FakeAnthropic if model_id.startswith("anthropic") else FakeOpenAI
    with fake([Reply(text="Answer: A")]) as srv:
        agent = make_agent(model_id, preset="medframeqa", base_url=srv.base_url)  # GPT: chat
        _run(agent, slide, tmp_path)
        body = srv.bodies[0]
    for key, value in expected.items():
        assert body[key] == value
    if fake is FakeAnthropic:
        assert "temperature" not in body


def test_the_limiter_is_a_model_and_hides_nothing() -> None:
    model = resolve_model("openai:gpt-5")
    limited = LimitedModel(model, asyncio.Semaphore(1))
    assert isinstance(limited, Model)
    assert limited.profile is model.profile and limited.settings is model.settings
    setattr(limited, "extra", 1)  # noqa: B010 - a write stays on the wrapper
    assert not hasattr(model, "extra")


def _run(agent: Any, slide: Path, tmp_path: Path) -> None:
    sample = question_sample(slide, "What is the diagnosis?", ["Tumour", "Normal"])
    run = RunDir.create(tmp_path / "run", agent.config(), agent.prompt_hashes())

    async def go() -> None:
        try:
            await agent.run(sample, run.recorder())
        finally:
            await agent.aclose()

    asyncio.run(go())


def test_prompt_cache_is_a_flag_decided_per_preset_and_recorded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Issue 19 row 9: caching changes the bill, not what the model sees. Claude's breakpoints:
    on under scout, off under giant (GIANT's requests carry none), --prompt-cache decides; the
    manifest records it; OpenAI caches by itself, so the flag is refused there in one line."""
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test-0000000")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-0000000000")
    claude = "anthropic:claude-sonnet-4-5"
    cases = [
        ({"preset": "scout"}, "on"),
        ({"preset": "vitar"}, "on"),
        ({"preset": "giant"}, "off"),
        ({"preset": "thumbnail"}, "off"),
        ({"preset": "medframeqa"}, "off"),
        ({"preset": "giant", "prompt_cache": True}, "on"),
        ({"preset": "scout", "prompt_cache": False}, "off"),
    ]
    for flags, mode in cases:
        agent = make_agent(claude, **flags)
        cfg = agent.config()
        assert cfg["protocol"]["prompt_cache"] == mode, flags  # type: ignore[index]
        assert bool(agent.settings.model.settings.prompt_cache) is (mode == "on")
        assert cfg["prompt_cache"] == flags.get("prompt_cache")  # the flag as given
    assert make_agent("openai:gpt-5").config()["protocol"]["prompt_cache"] == "automatic"  # type: ignore[index]
    with pytest.raises(ConfigError) as err:
        make_agent("openai:gpt-5", prompt_cache=True)
    assert "\n" not in str(err.value) and "OpenAI caches prompts by itself" in str(err.value)
