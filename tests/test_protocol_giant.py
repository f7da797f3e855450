"""Conformance: a scripted GIANT run through the real ``openai`` and ``anthropic`` SDKs against the
fake servers; request bodies checked field by field against DESIGN.md "What GIANT does"."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import re
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from slidefactory import make_tiff

from slidescout.agents.loop import make_agent
from slidescout.agents.models import resolve_model
from slidescout.core.trace import Trace
from slidescout.eval.ask import question_sample
from slidescout.testing.fake_anthropic import FakeAnthropic
from slidescout.testing.fake_openai import FakeOpenAI, Reply, ToolCall
from slidescout.traces.rundir import RunDir

T = 4  # GIANT's T is 20; the rules are the same at any T
ZOOM = ToolCall("slide_zoom", {"x0": 1000, "y0": 800, "w": 2000, "h": 1500})
EDGE = ToolCall("slide_zoom", {"x0": 5000, "y0": 3000, "w": 2000, "h": 2000})  # clamped at the edge
ANSWER = Reply(
    text='<report>Glands with crowded nuclei.</report>\n<response>{"answer": 1}</response>',
    reasoning="Enough seen.",
)
# a resolution stated: µm/px, microns, mpp, or a magnification value ("40x", "≈10x")
_MPP_TEXT = re.compile(r"µm|\bum/px|microns?\b|\bmpp\b|≈|\b\d+(?:\.\d+)?x\b|objective", re.I)


@pytest.fixture(scope="module")
def slide_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    p = tmp_path_factory.mktemp("giant") / "s.tiff"
    make_tiff(p, 6000, 4000, mpp=0.25)
    return p


def _run(
    model: Any,
    slide_path: Path,
    tmp_path: Path,
    preset: str = "giant",
    max_steps: int = T,
    **kw: Any,
) -> Trace:
    agent = make_agent(model, preset=preset, max_steps=max_steps, **kw)
    sample = question_sample(slide_path, "What is the diagnosis?", ["Tumour", "Normal"])
    run = RunDir.create(tmp_path / "run", agent.config(), agent.prompt_hashes())

    async def go() -> Trace:
        try:
            return await agent.run(sample, run.recorder())
        finally:
            await agent.model.aclose()

    return asyncio.run(go())


def _texts(obj: Any) -> list[str]:
    """Every string in a request body except image payloads."""
    out: list[str] = []
    stack = [obj]
    while stack:
        o = stack.pop()
        if isinstance(o, dict):
            stack.extend(
                v
                for k, v in o.items()
                if k not in ("image_url", "data", "encrypted_content", "signature")
            )
        elif isinstance(o, list):
            stack.extend(o)
        elif isinstance(o, str):
            out.append(o)
    return out


def _jpeg_quality_tables(data: bytes) -> dict[int, list[int]]:
    return {k: list(v) for k, v in Image.open(io.BytesIO(data)).quantization.items()}  # type: ignore[attr-defined]


def _q75_tables(size: tuple[int, int]) -> dict[int, list[int]]:
    buf = io.BytesIO()
    Image.new("RGB", size, (200, 120, 160)).save(buf, "JPEG", quality=75)
    return _jpeg_quality_tables(buf.getvalue())


def _data_url_bytes(url: str) -> bytes:
    return base64.b64decode(url.split(",", 1)[1])


def test_giant_openai_request_fields_and_reruns(slide_path: Path, tmp_path: Path) -> None:
    overrun = [
        Reply(tool_calls=[ZOOM], reasoning="look") for _ in range(T)
    ]  # still zooming at step T
    with FakeOpenAI([*overrun, Reply(tool_calls=[EDGE], reasoning="look"), ANSWER]) as srv:
        model = resolve_model("openai:gpt-5", base_url=srv.base_url, api="responses")
        trace = _run(model, slide_path, tmp_path)
        bodies = srv.bodies
    assert trace.status == "answered" and "<response>" in (trace.answer or "")
    assert len(bodies) == T + 2  # one overrun attempt of T requests, then the rerun
    reruns = trace.config["reruns"]
    assert len(reruns) == 1 and reruns[0]["status"] == "max_steps" and reruns[0]["model_calls"] == T
    assert reruns[0]["input_tokens"] > 0 and "cost_usd" in reruns[0]
    assert any('"rerun": 1' in getattr(e, "message", "") for e in trace.events)
    assert trace.usage.input_tokens > sum(
        b for b in [reruns[0]["input_tokens"]]
    )  # reruns stay in the cost
    for body in bodies:
        # (2) reasoning effort high with a detailed summary; encrypted reasoning kept for the next turn
        assert body["reasoning"] == {"effort": "high", "summary": "detailed"}
        assert body["include"] == ["reasoning.encrypted_content"]
        # (3) tools on every step, step T included (tool_choice left to the API's "auto", as
        # GIANT's requests); no forced-answer message
        assert [t["name"] for t in body["tools"]] == ["slide_zoom"] and "tool_choice" not in body
        texts = _texts(body)
        assert not any("tools are no longer available" in t for t in texts)
        # (4) no µm/px or magnification anywhere
        assert not [t for t in texts if _MPP_TEXT.search(t)], [
            t for t in texts if _MPP_TEXT.search(t)
        ]
    # (1) the prompt (the first input item, as GIANT's): every step used, report and response
    # tags, no resolution
    system = bodies[0]["input"][0]
    assert (system["role"], system["type"]) == ("system", "message") and "instructions" not in (
        bodies[0]
    )
    instructions = system["content"]
    assert (
        "<report>" in instructions
        and "<response>" in instructions
        and "6000 x 4000" in instructions
    )
    assert f"{T - 1} calls" in instructions
    # (9) the overview: first user message, detail unset, JPEG quality 75
    first = bodies[0]["input"][1]
    ov = [c for c in first["content"] if c["type"] == "input_image"]
    assert len(ov) == 1 and "detail" not in ov[0]
    ov_bytes = _data_url_bytes(ov[0]["image_url"])
    assert _jpeg_quality_tables(ov_bytes) == _q75_tables((64, 64))
    # (6) tool images inline in function_call_output: the text, then input_image with detail high
    last = bodies[-1]["input"]
    outputs = [i for i in last if i.get("type") == "function_call_output"]
    assert len(outputs) == 1
    out = outputs[0]["output"]
    assert (
        isinstance(out, list) and out[0]["type"] == "input_text" and out[1]["type"] == "input_image"
    )
    assert out[1]["detail"] == "high"
    assert "top-left corner (5000,3000)" in out[0]["text"] and "remain" in out[0]["text"]
    assert not [
        i for i in last if i.get("role") == "user" and i is not last[1]
    ]  # no separate image message
    img = Image.open(io.BytesIO(_data_url_bytes(out[1]["image_url"])))
    assert max(img.size) == 1000 and _jpeg_quality_tables(
        _data_url_bytes(out[1]["image_url"])
    ) == _q75_tables((64, 64))
    # reasoning items go back every turn
    assert any(i.get("type") == "reasoning" for i in last)


def test_giant_overrun_every_attempt_counts_wrong_after_3_reruns(
    slide_path: Path, tmp_path: Path
) -> None:
    with FakeOpenAI(lambda body: Reply(tool_calls=[ZOOM])) as srv:
        model = resolve_model("openai:gpt-5", base_url=srv.base_url, api="responses")
        trace = _run(model, slide_path, tmp_path)
        n = len(srv.requests)
    assert n == 4 * T  # the first attempt and 3 reruns
    assert trace.status == "max_steps" and trace.answer is None
    assert [r["status"] for r in trace.config["reruns"]] == ["max_steps"] * 3
    record = json.loads((tmp_path / "run" / "traces" / f"{trace.sample_id}.json").read_text())
    assert record["status"] == "max_steps" and len(record["config"]["reruns"]) == 3


def test_giant_claude_thinking_max_tokens_and_one_call_per_turn(
    slide_path: Path, tmp_path: Path
) -> None:
    two_calls = Reply(tool_calls=[ZOOM, EDGE], reasoning="Two regions at once.")
    with FakeAnthropic([two_calls, ANSWER]) as srv:
        model = resolve_model("anthropic:claude-sonnet-4-5", base_url=srv.base_url)
        trace = _run(model, slide_path, tmp_path)
        bodies = srv.bodies
    assert trace.status == "answered" and len(bodies) == 2
    for body in bodies:
        assert body["max_tokens"] == 30000
        assert body["thinking"] == {"type": "enabled", "budget_tokens": 1024}
        assert [t["name"] for t in body["tools"]] == ["slide_zoom"] and "tool_choice" not in body
        assert "temperature" not in body
        assert not [t for t in _texts(body) if _MPP_TEXT.search(t)]
    assert "one tool call per turn" in bodies[0]["system"]
    tools = trace.tool_events
    assert [t.error is None for t in tools] == [True, False]  # only the first call of the turn ran
    assert "only one tool call per turn" in (tools[1].error or "")
    results = [b for b in bodies[1]["messages"][-1]["content"] if b["type"] == "tool_result"]
    # as GIANT's Claude agent: the rejected call gets "Error: ..." as a plain string, no is_error
    assert len(results) == 2 and "is_error" not in results[1]
    assert results[1]["content"] == f"Error: {tools[1].error}"
    images = [c for c in results[0]["content"] if c["type"] == "image"]
    assert len(images) == 1
    img = Image.open(io.BytesIO(base64.b64decode(images[0]["source"]["data"])))
    assert max(img.size) == 500  # GIANT's Claude image size


def test_giant_flags_override_preset_and_are_in_the_manifest(
    slide_path: Path, tmp_path: Path
) -> None:
    with FakeOpenAI([ANSWER]) as srv:
        agent = make_agent(
            "openai:gpt-5",
            preset="giant",
            base_url=srv.base_url,
            api="responses",
            reasoning_effort="medium",
            max_output_tokens=5000,
        )
        cfg = agent.config()["protocol"]
        assert cfg["model_settings"] == {
            "reasoning_effort": "medium",
            "reasoning_summary": "detailed",
            "max_output_tokens": 5000,
            "tool_result_images": "inline",
            "request_layout": "giant",
        }
        assert cfg["reruns"] == 3 and cfg["forced_answer"] is False and cfg["jpeg_quality"] == 75
        assert cfg["system_prompt"] == "giant_system" and len(cfg["system_prompt_sha256"]) == 64
        asyncio.run(agent.model.aclose())


def test_system_prompt_file_replaces_the_preset_prompt(slide_path: Path, tmp_path: Path) -> None:
    prompt = tmp_path / "mine.txt"
    prompt.write_text("My own words. The slide is $width by $height.", encoding="utf-8")
    with FakeOpenAI([ANSWER]) as srv:
        model = resolve_model("openai:gpt-5", base_url=srv.base_url, api="responses")
        _run(model, slide_path, tmp_path, system_prompt=prompt)
        system = srv.bodies[0]["input"][0]  # giant: the system prompt is the first input item
        assert system["content"] == "My own words. The slide is 6000 by 4000."
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert "file:mine.txt" in json.dumps(manifest)


@pytest.mark.parametrize(
    "model_id, settings, message",
    [
        (
            "anthropic:claude-sonnet-4-5",
            {"reasoning_effort": "high"},
            "for Claude use --thinking-budget",
        ),
        ("openai:gpt-5", {"thinking_budget": 2048}, "applies to Claude"),
        ("openai:gpt-4o", {"reasoning_effort": "high"}, "is not a reasoning model"),
    ],
)
def test_reasoning_flags_a_model_cannot_take_are_a_clear_error(
    model_id: str, settings: dict[str, Any], message: str
) -> None:
    from slidescout.errors import ConfigError

    with pytest.raises(ConfigError, match=message):
        make_agent(
            model_id,
            preset="giant",
            base_url="http://127.0.0.1:9/v1",
            api="responses" if model_id.startswith("openai") else "auto",
            **settings,
        )


def test_thumbnail_and_patch_baselines_send_no_system_prompt(
    slide_path: Path, tmp_path: Path
) -> None:
    for preset, n in (("thumbnail", 1), ("patch", 3)):
        with FakeOpenAI(lambda body: Reply(text='{"answer": 1}')) as srv:
            model = resolve_model("openai:gpt-5", base_url=srv.base_url, api="responses")
            trace = _run(model, slide_path, tmp_path / preset, preset=preset, max_steps=n)
            bodies = srv.bodies
        assert trace.status == "answered" and len(bodies) == n
        for body in bodies:
            assert "instructions" not in body
            assert body["reasoning"] == {"effort": "high", "summary": "detailed"}  # as the agent
            (user,) = body["input"]
            images = [c for c in user["content"] if c["type"] == "input_image"]
            assert len(images) == 1 and "detail" not in images[0]
            assert _jpeg_quality_tables(_data_url_bytes(images[0]["image_url"])) == _q75_tables(
                (64, 64)
            )
        if preset == "thumbnail":
            assert max(Image.open(io.BytesIO(_data_url_bytes(images[0]["image_url"]))).size) == 1024


def test_edge_labels_use_the_box_shown(slide_path: Path) -> None:
    # GIANT labels a clamped edge box from the unclamped size (wrong); ours follow the box shown
    from slidescout.slides import Slide
    from slidescout.slides.guides import giant_label_values

    with Slide.open(slide_path) as slide:
        view = slide.read(
            (5000, 3000, 2000, 2000),
            max_side=1000,
            guides=True,
            level_rule="giant",
            guide_style="giant",
        )
    assert view.clamped and view.box.as_tuple() == (5000, 3000, 1000, 1000)
    xs, ys = giant_label_values(view.box, view.width, view.height)
    assert max(xs) < 6000 and max(ys) < 4000 and xs[-1] == 5800


def test_giant_settings_reach_the_model_through_eval(slide_path: Path, tmp_path: Path) -> None:
    """``eval`` wraps each model in a connection limiter; the preset's reasoning settings must still
    reach the adapter that sends the request."""
    from slidescout.agents.config import AgentConfig
    from slidescout.eval.runner import run_eval

    sample = question_sample(slide_path, "What is the diagnosis?", ["Tumour", "Normal"])
    with FakeOpenAI([ANSWER]) as srv:
        config = AgentConfig(
            model="openai:gpt-5", preset="giant", base_url=srv.base_url, api="responses"
        )
        asyncio.run(run_eval([sample], out=tmp_path / "run", agent=config))
        body = srv.bodies[0]
    assert body["reasoning"] == {"effort": "high", "summary": "detailed"}
