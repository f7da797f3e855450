"""``scout``, the default protocol: forced final answer, resolution stated, an append-only history."""

from __future__ import annotations

import asyncio
import inspect
from pathlib import Path

import pytest
from slidefactory import make_tiff

from slidescout.agents.config import AgentConfig
from slidescout.agents.loop import make_agent
from slidescout.agents.models import resolve_model
from slidescout.agents.presets import DEFAULT_PRESET, PRESETS
from slidescout.eval.ask import question_sample
from slidescout.testing.fake_openai import FakeOpenAI, Reply, ToolCall
from slidescout.traces.rundir import RunDir


@pytest.fixture(scope="module")
def slide_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    p = tmp_path_factory.mktemp("scout") / "s.tiff"
    make_tiff(p, 6000, 4000, mpp=0.25)
    return p


def test_scout_is_the_default_everywhere() -> None:
    from slidescout.cli.agent_cmd import ask

    assert DEFAULT_PRESET == "scout" and AgentConfig().preset == "scout"
    assert make_agent("expert").preset.name == "scout"
    assert "scout (default)" in str(inspect.signature(ask).parameters["preset"].default.help)
    vitar, scout = PRESETS["vitar"], PRESETS["scout"]
    fields = (
        "forced_answer",
        "show_mpp",
        "keep_images",
        "reruns",
        "fit_context",
        "budget_unit",
        "views_per_turn",
        "model_settings",
    )
    # vitar builds on scout: several views per turn, a budget of views, the cached history
    assert [getattr(vitar, f) for f in fields] == [getattr(scout, f) for f in fields]
    assert (scout.views_per_turn, scout.budget_unit, scout.fit_context) == (4, "views", True)


def test_scout_requests(slide_path: Path, tmp_path: Path) -> None:
    T = 12
    zoom = ToolCall("slide_zoom", {"x0": 1000, "y0": 800, "w": 2000, "h": 1500})
    with FakeOpenAI(lambda body: Reply(tool_calls=[zoom])) as srv:  # never stops zooming by itself
        model = resolve_model("openai:gpt-5", base_url=srv.base_url, api="responses")
        agent = make_agent(model, max_steps=T)
        sample = question_sample(slide_path, "What is the diagnosis?", ["Tumour", "Normal"])
        run = RunDir.create(tmp_path / "run", agent.config(), agent.prompt_hashes())

        async def go():
            try:
                return await agent.run(sample, run.recorder())
            finally:
                await model.aclose()

        trace = asyncio.run(go())
        bodies = srv.bodies
    assert (
        len(bodies) == T and trace.status == "max_steps"
    )  # no reruns: the forced last step ends it
    assert "µm per pixel" in bodies[0]["instructions"] and "40x" in bodies[0]["instructions"]
    assert [b["tool_choice"] for b in bodies] == ["auto"] * (T - 1) + ["none"]
    assert "tools are no longer available" in str(bodies[-1]["input"][-1])
    assert "reasoning" not in bodies[0]  # no preset reasoning defaults: the API's own
    outputs = [i for i in bodies[-1]["input"] if i.get("type") == "function_call_output"]
    assert all(isinstance(o["output"], str) for o in outputs) and "µm/px" in outputs[-1]["output"]
    # append-only: every image stays (each request's prefix is the previous request)
    counts = [str(b["input"]).count("'input_image'") for b in bodies]
    assert counts == list(range(1, T + 1))
    assert "image no longer shown" not in str(bodies[-1]["input"])
    for a, b in zip(bodies, bodies[1:], strict=False):
        assert b["input"][: len(a["input"])] == a["input"]


def test_cli_reasoning_flags_prompt_file_and_manifest(slide_path: Path, tmp_path: Path) -> None:
    import json

    from test_agent_cli import cli

    def one_line_error(r: object) -> bool:
        err = r.stderr.strip()  # type: ignore[attr-defined]
        return r.returncode != 0 and err.startswith("error:") and len(err.splitlines()) == 1  # type: ignore[attr-defined]

    r = cli(
        "ask",
        str(slide_path),
        "q",
        "-m",
        "anthropic:claude-sonnet-4-5",
        "--reasoning-effort",
        "high",
        env={"ANTHROPIC_API_KEY": "sk-ant-test"},
    )
    assert one_line_error(r) and "--thinking-budget" in r.stderr
    from slidescout.errors import ConfigError

    with pytest.raises(ConfigError, match="missing.txt: cannot read it"):
        make_agent("expert", system_prompt=tmp_path / "missing.txt")
    prompt = tmp_path / "p.md"
    prompt.write_text("Exact prompt text for a $width x $height slide.", encoding="utf-8")
    with FakeOpenAI([Reply(text='<response>{"answer": 1}</response>')]) as srv:
        r = cli(
            "ask",
            str(slide_path),
            "What is it?",
            "--option",
            "A",
            "--option",
            "B",
            "-m",
            "openai:gpt-5",
            "--base-url",
            srv.base_url,
            "--api",
            "responses",
            "-p",
            "giant",
            "--reasoning-effort",
            "medium",
            "--prompt-file",
            str(prompt),
            "-o",
            str(tmp_path / "run"),
            "--json",
            env={"OPENAI_API_KEY": "sk-test"},
        )
        body = srv.bodies[0]
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["choice"] == "A"
    assert body["reasoning"] == {"effort": "medium", "summary": "detailed"}
    # giant sends the system prompt as the conversation's first input item, as GIANT's code does
    assert body["input"][0]["role"] == "system" and "instructions" not in body
    assert body["input"][0]["content"] == "Exact prompt text for a 6000 x 4000 slide."
    protocol = json.loads((tmp_path / "run" / "manifest.json").read_text())["config"]["agent"][
        "protocol"
    ]
    assert (
        protocol["model_settings"]["reasoning_effort"] == "medium"
        and protocol["system_prompt"] == "file:p.md"
    )


def test_resume_refuses_another_prompt_or_reasoning_setting(tmp_path: Path) -> None:
    import json

    from slidescout.errors import ConfigError
    from slidescout.eval.runner import _check_resumable

    old = {
        "agent": {
            "model": "openai:gpt-5",
            "preset": "giant",
            "protocol": {
                "system_prompt_sha256": "a" * 64,
                "model_settings": {"reasoning_effort": "high"},
            },
        }
    }
    (tmp_path / "manifest.json").write_text(json.dumps({"config": old}))
    _check_resumable(tmp_path, old)
    new = json.loads(json.dumps(old))
    new["agent"]["protocol"]["model_settings"] = {"reasoning_effort": "low"}
    with pytest.raises(ConfigError, match="reasoning settings"):
        _check_resumable(tmp_path, new)
